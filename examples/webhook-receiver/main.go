// Command webhook-receiver is a minimal receiver of eventbus webhooks. It
// implements the Standard Webhooks verification from the spec with the
// standard library alone, so it doubles as a check that eventbus signs by the
// spec rather than by its own code.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

const (
	maxBody  = 1 << 20 // eventbus events are far smaller; more is not ours
	remember = 10_000  // ids kept for deduplication
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	addr := os.Getenv("ADDR")
	if addr == "" {
		addr = "127.0.0.1:8090"
	}
	secret := os.Getenv("WEBHOOK_SECRET")
	if _, err := parseSecret(secret); err != nil {
		log.Error("WEBHOOK_SECRET: " + err.Error())
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv := &http.Server{
		Addr:              addr,
		Handler:           newReceiver(secret, log),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
	}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Info("listening", "addr", addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Error("serve", "err", err)
		os.Exit(1)
	}
}

// event is the part of an eventbus event this receiver looks at.
type event struct {
	ID        string `json:"id"`
	EventType string `json:"event_type"`
}

type receiver struct {
	secret string
	log    *slog.Logger
	now    func() time.Time // replaced in tests

	mu   sync.Mutex
	seen map[string]struct{}
	ring []string // seen's ids in arrival order, to forget the oldest
	next int
}

func newReceiver(secret string, log *slog.Logger) *receiver {
	return &receiver{secret: secret, log: log, now: time.Now, seen: make(map[string]struct{}, remember), ring: make([]string, remember)}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "body over 1 MiB", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "reading body failed", http.StatusBadRequest)
		return
	}
	id := r.Header.Get("webhook-id")
	err = verify(rc.secret, id, r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature"), body, rc.now())
	switch {
	case errors.Is(err, errSignature):
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var ev event
	if err := json.Unmarshal(body, &ev); err != nil {
		http.Error(w, "body is not an event", http.StatusBadRequest)
		return
	}
	// Deduplicate only after verifying, or forged requests could claim the
	// ids of real events; a duplicate is answered 2xx so the sender stops
	// retrying.
	if !rc.first(id) {
		w.WriteHeader(http.StatusOK)
		return
	}
	rc.log.Info("event", "id", ev.ID, "event_type", ev.EventType)
	w.WriteHeader(http.StatusNoContent)
}

// first records id and reports whether it is new, in one critical section so
// that concurrent retries of one delivery are processed once.
func (rc *receiver) first(id string) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if _, ok := rc.seen[id]; ok {
		return false
	}
	delete(rc.seen, rc.ring[rc.next])
	rc.ring[rc.next] = id
	rc.next = (rc.next + 1) % len(rc.ring)
	rc.seen[id] = struct{}{}
	return true
}

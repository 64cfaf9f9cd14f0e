package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventbus/eventbus/config"
	"github.com/eventbus/eventbus/publisher"
)

// tailCommand prints the events of the stream as they arrive, through an
// ephemeral ordered consumer: nothing is acked and no durable state is left
// behind, so tailing never disturbs the services that consume the stream.
func tailCommand(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flags("tail")
	var since timeFlag
	fs.Var(&since, "since", "start at events stored at or after this time (default: new events only)")
	asJSON := fs.Bool("json", false, "print each message body as one JSON line")
	positional, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(positional) > 1 {
		return &usageError{fmt.Sprintf("unexpected argument %q: tail takes one subject filter", positional[1])}
	}
	filter := cfg.SubjectPrefix + ".>"
	if len(positional) == 1 {
		if filter, err = tailFilter(cfg.SubjectPrefix, positional[0]); err != nil {
			return &usageError{err.Error()}
		}
	}

	nc, stream, err := openStream(ctx, cfg, "eventbus tail")
	if err != nil {
		return err
	}
	defer nc.Close()
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}, DeliverPolicy: jetstream.DeliverNewPolicy}
	from := "new events"
	if !since.t.IsZero() {
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &since.t
		from = since.String()
	}
	cons, err := stream.OrderedConsumer(ctx, occ)
	if err != nil {
		return fmt.Errorf("create consumer on %s for %s: %w", cfg.Stream, filter, err)
	}
	// The consumer is ephemeral: the server removes it after a few minutes
	// without a client. Removing it now keeps `nats consumer ls` tidy.
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = stream.DeleteConsumer(ctx, cons.CachedInfo().Name)
	}()
	msgs, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("consume %s: %w", cfg.Stream, err)
	}
	defer msgs.Stop()
	// The consumer exists from here on: every event stored from now is shown.
	fmt.Fprintf(stderr, "tailing %s on stream %s from %s; Ctrl-C to stop\n", filter, cfg.Stream, from)

	var line []byte
	var last uint64 // stream sequence: a consumer reset can hand a message over again
	for {
		m, err := msgs.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read from stream %s: %w", cfg.Stream, err)
		}
		if md, err := m.Metadata(); err == nil {
			if md.Sequence.Stream <= last {
				continue
			}
			last = md.Sequence.Stream
		}
		if *asJSON {
			line = appendJSONLine(line[:0], m.Data())
		} else {
			line = appendTextLine(line[:0], m)
		}
		// One write per line, unbuffered: a reader sees each event at once.
		if _, err := stdout.Write(line); err != nil {
			return err
		}
	}
}

// tailFilter turns the filter given on the command line into a subject
// filter: an event type filter such as lead.created or lead.> gets the
// subject prefix, a filter already under the prefix is kept.
func tailFilter(prefix, f string) (string, error) {
	if f != prefix && !strings.HasPrefix(f, prefix+".") {
		f = prefix + "." + f
	}
	toks := strings.Split(f, ".")
	for i, tok := range toks {
		switch {
		case tok == "":
			return "", fmt.Errorf("subject filter %q has an empty token", f)
		case tok == ">" && i != len(toks)-1:
			return "", fmt.Errorf("subject filter %q: > must be the last token", f)
		case tok != "*" && tok != ">" && strings.ContainsAny(tok, "*>"):
			return "", fmt.Errorf("subject filter %q: wildcards * and > must be whole tokens", f)
		case strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			return "", fmt.Errorf("subject filter %q contains whitespace or a control character", f)
		}
	}
	return f, nil
}

// parseInterspersed is parse for commands that take positional arguments
// before, between or after their flags; it returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if fs.Parse(args) != nil {
			return nil, parse(fs, args) // the same error, as a usage error
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// appendJSONLine appends the message body as it is, followed by a newline.
// A body that spans lines (not one the relay wrote) is compacted first so
// that each message stays one line.
func appendJSONLine(dst, data []byte) []byte {
	if bytes.ContainsAny(data, "\r\n") {
		var b bytes.Buffer
		if json.Compact(&b, data) == nil {
			data = b.Bytes()
		}
	}
	return append(append(dst, data...), '\n')
}

// appendTextLine appends one line for a human: time, subject, event id,
// aggregate, the compact payload, and "(replay)" for a replayed event.
func appendTextLine(dst []byte, m jetstream.Msg) []byte {
	var b struct {
		ID            string          `json:"id"`
		AggregateType string          `json:"aggregate_type"`
		AggregateID   string          `json:"aggregate_id"`
		Payload       json.RawMessage `json:"payload"`
		CreatedAt     time.Time       `json:"created_at"`
	}
	if err := json.Unmarshal(m.Data(), &b); err != nil {
		// Not an eventbus body: show what there is.
		dst = fmt.Appendf(dst, "%s  %s  (not an event: %q)\n", stored(m).Format(time.RFC3339Nano), m.Subject(), m.Data())
		return dst
	}
	at := b.CreatedAt
	if at.IsZero() {
		at = stored(m)
	}
	var payload bytes.Buffer
	if json.Compact(&payload, b.Payload) != nil || payload.Len() == 0 {
		payload.Reset()
		payload.WriteString("null")
	}
	dst = fmt.Appendf(dst, "%s  %s  %s  %s/%s  %s", at.UTC().Format(time.RFC3339Nano), m.Subject(), b.ID, b.AggregateType, b.AggregateID, payload.Bytes())
	if m.Headers().Get(publisher.HeaderReplay) == "true" {
		dst = append(dst, "  (replay)"...)
	}
	return append(dst, '\n')
}

// stored is when the stream stored m.
func stored(m jetstream.Msg) time.Time {
	if md, err := m.Metadata(); err == nil {
		return md.Timestamp
	}
	return time.Time{}
}

package publisher

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventbus/eventbus/internal/devstack/natsserver"
)

// BenchmarkDuplicateWindowMemory measures what JetStream's duplicate window
// costs the server per message id it remembers (the README's
// EVENTBUS_DUPLICATE_WINDOW row quotes it): the same messages go to two
// memory streams of an embedded server, one keyed by Nats-Msg-Id inside a
// one-hour window, one with the same header bytes under another name; the
// difference in the process's live heap, per message, is the cost of an id.
func BenchmarkDuplicateWindowMemory(b *testing.B) {
	const n = 200_000
	srv, err := natsserver.Start(natsserver.Options{StoreDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()

	heapAfter := func(name, header string) uint64 {
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{name + ".>"},
			Storage: jetstream.MemoryStorage, Duplicates: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		for i := range n {
			m := nats.NewMsg(name + ".e")
			m.Header.Set(header, fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)) // a UUID's length
			m.Data = []byte(`{}`)
			if _, err := js.PublishMsgAsync(m); err != nil {
				b.Fatal(err)
			}
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			b.Fatal("publishes not acked within a minute")
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	for b.Loop() {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before := ms.HeapAlloc
		suffix := fmt.Sprint(time.Now().UnixNano())
		plain := heapAfter("PLAIN"+suffix, "Eventbus-Id")
		keyed := heapAfter("DEDUP"+suffix, "Nats-Msg-Id")
		perID := (float64(keyed) - float64(plain) - (float64(plain) - float64(before))) / n
		b.ReportMetric(perID, "B/id")
		b.ReportMetric((float64(plain)-float64(before))/n, "B/msg")
		for _, name := range []string{"PLAIN" + suffix, "DEDUP" + suffix} {
			if err := js.DeleteStream(ctx, name); err != nil {
				b.Fatal(err)
			}
		}
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eventbus/eventbus/config"
	"github.com/eventbus/eventbus/outbox"
	"github.com/eventbus/eventbus/publisher"
)

func dlqCommand(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	return runSubcommand(ctx, cfg, "dlq", args, stdout, subcommand{"list", dlqList}, subcommand{"redrive", dlqRedrive})
}

// deadLetter is one message of the dead-letter stream, as dlq list prints it.
type deadLetter struct {
	Sequence   uint64    `json:"sequence"`
	Time       time.Time `json:"time"`
	Subject    string    `json:"subject"`
	MsgID      string    `json:"msg_id"`
	EventID    string    `json:"event_id"`
	EventType  string    `json:"event_type"`
	RetryCount int       `json:"retry_count"`
	Error      string    `json:"error"`
	WebhookID  string    `json:"webhook_id,omitempty"`
}

func dlqList(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	fs := flags("dlq list")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	dcfg := cfg
	dcfg.Stream = publisher.DeadLetterStream(cfg.Stream)
	nc, stream, err := openStream(ctx, dcfg, "eventbus-dlq")
	if err != nil {
		return err
	}
	defer nc.Close()
	letters, err := readDeadLetters(ctx, stream)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, letters)
	}
	tw := newTable(stdout, "TIME\tSUBJECT\tEVENT\tRETRIES\tERROR")
	for _, l := range letters {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", l.Time.UTC().Format(time.RFC3339), l.Subject, l.EventID, l.RetryCount, truncateText(l.Error, 120))
	}
	return tw.Flush()
}

// readDeadLetters reads every message the stream holds now, oldest first.
func readDeadLetters(ctx context.Context, stream jetstream.Stream) ([]deadLetter, error) {
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, err
	}
	letters := []deadLetter{}
	if info.State.Msgs == 0 {
		return letters, nil
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return nil, err
	}
	for {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return nil, fmt.Errorf("read the dead-letter stream: %w", err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return nil, err
		}
		if n := len(letters); n > 0 && meta.Sequence.Stream <= letters[n-1].Sequence {
			continue // handed over again by a consumer reset
		}
		h := msg.Headers()
		var body struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(msg.Data(), &body)
		retries, _ := strconv.Atoi(h.Get(publisher.HeaderRetryCount))
		letters = append(letters, deadLetter{
			Sequence: meta.Sequence.Stream, Time: meta.Timestamp, Subject: msg.Subject(), MsgID: h.Get(jetstream.MsgIDHeader),
			EventID: body.ID, EventType: h.Get(publisher.HeaderEventType), RetryCount: retries,
			Error: h.Get(publisher.HeaderError), WebhookID: h.Get(publisher.HeaderWebhookID),
		})
		if meta.NumPending == 0 || meta.Sequence.Stream >= info.State.LastSeq {
			return letters, nil
		}
	}
}

func dlqRedrive(ctx context.Context, cfg config.Config, args []string, stdout io.Writer) error {
	fs := flags("dlq redrive")
	eventType := fs.String("event-type", "", "only events of this type")
	var since timeFlag
	fs.Var(&since, "since", "only events created at or after this time")
	if err := parse(fs, args); err != nil {
		return err
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	n, err := outbox.NewStore(pool).RedriveFailed(ctx, *eventType, since.t)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d failed events handed back to the relay\n", n)
	return nil
}

// truncateText shortens s to n bytes for a table cell.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

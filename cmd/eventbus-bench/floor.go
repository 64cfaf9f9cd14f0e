package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The floor pipe is the least a change-data-capture relay can do per event
// in Go with these libraries: read the slot (pgoutput, as the relay does),
// publish each insert to JetStream at once with a message id, let nats.go
// collect the PubAcks, and nothing else. It marks no row, keeps no order of
// acknowledgements, checks no payload and confirms the slot's position
// before the events are acknowledged: it is not a relay, and it must never
// become one. Its CPU per event, measured beside the relay's at the same
// rate, is the part of the relay's cost that handing events over one
// transaction at a time costs whatever the relay does; the rest is the
// relay's own.
const (
	floorCommand     = "floor-pipe"
	floorSlot        = "eventbus_bench_floor" // temporary: it goes with the pipe's connection
	floorPublication = "eventbus_bench_floor"
	floorStream      = "EVENTBUS_BENCH_FLOOR"
	floorPrefix      = "bench.floor"
	floorAppName     = "eventbus-bench-floor"

	floorDatabaseEnv = "EVENTBUS_BENCH_FLOOR_DATABASE_URL"
	floorNATSEnv     = "EVENTBUS_BENCH_FLOOR_NATS_URL"
)

// floorMain is the child's main: pipe until SIGTERM. It writes "ready" on
// stdout once streaming, and its error on stderr.
func floorMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runFloor(ctx, os.Getenv(floorDatabaseEnv), os.Getenv(floorNATSEnv), os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", floorCommand, err)
		return 1
	}
	return 0
}

// startFloor runs the floor pipe as a child process and returns once its
// temporary slot is streaming: events committed from then on reach
// floorStream.
func startFloor(ctx context.Context, e *env) (*child, error) {
	return startSelf(ctx, "floor pipe", filepath.Join(e.tmp, "floor-pipe.log"),
		// One P: what the relay's governor (internal/procs) picks below 0.4
		// of a core, and the cheaper way to run a pipe this light.
		[]string{floorDatabaseEnv + "=" + e.dbURL, floorNATSEnv + "=" + e.natsURL, "GOMAXPROCS=1"}, floorCommand)
}

// floorDeliverer is what the CPU meter measures of a running floor pipe.
func floorDeliverer(p *child) deliverer {
	return deliverer{pid: p.pid(), slot: floorSlot, leavesPending: true}
}

// runFloor creates the publication when missing and a temporary slot,
// says so on ready, and pipes until ctx ends.
func runFloor(ctx context.Context, dbURL, natsURL string, ready io.Writer) error {
	if err := ensureFloorPublication(ctx, dbURL); err != nil {
		return err
	}
	cfg, err := pgconn.ParseConfig(dbURL)
	if err != nil {
		return fmt.Errorf("database url: %w", err)
	}
	cfg.RuntimeParams["replication"] = "database"
	cfg.RuntimeParams["application_name"] = floorAppName
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("replication connection: %w", err)
	}
	defer conn.Close(context.Background())
	slot, err := pglogrepl.CreateReplicationSlot(ctx, conn, floorSlot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: true, SnapshotAction: "NOEXPORT_SNAPSHOT"})
	if err != nil {
		return fmt.Errorf("create slot %s: %w", floorSlot, err)
	}
	start, err := pglogrepl.ParseLSN(slot.ConsistentPoint)
	if err != nil {
		return fmt.Errorf("slot's consistent point: %w", err)
	}
	err = pglogrepl.StartReplication(ctx, conn, floorSlot, start, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + floorPublication + "'"},
	})
	if err != nil {
		return fmt.Errorf("start replication: %w", err)
	}

	nc, err := nats.Connect(natsURL)
	if err != nil {
		return fmt.Errorf("connect to nats: %w", err)
	}
	defer nc.Close()
	var publishErr atomic.Pointer[error]
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			publishErr.CompareAndSwap(nil, &err)
		}))
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(ready, "ready"); err != nil {
		return err
	}

	// Reads block without a context (pgconn watches none for Background, as
	// the relay's reader watches none per message); the end closes the
	// socket under the read.
	go func() {
		<-ctx.Done()
		_ = conn.Conn().Close()
	}()
	err = pipe(conn, js, &publishErr)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func ensureFloorPublication(ctx context.Context, dbURL string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1)", floorPublication).Scan(&exists); err != nil {
		return fmt.Errorf("publication: %w", err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE PUBLICATION "+floorPublication+" FOR TABLE public.event_bus WITH (publish = 'insert')"); err != nil {
		return fmt.Errorf("create publication: %w", err)
	}
	return nil
}

// pipe publishes every insert it reads as {"id": …, "payload": …}, the two
// fields the bench's counter reads, until the connection fails. It answers
// the walsender's keepalives with the last commit read as written and
// flushed (see the type's comment: a floor, not a relay).
func pipe(conn *pgconn.PgConn, js jetstream.JetStream, publishErr *atomic.Pointer[error]) error {
	var (
		idCol, payloadCol = -1, -1
		relation          uint32
		lastCommit        pglogrepl.LSN
		reported          = time.Now()
	)
	for {
		if p := publishErr.Load(); p != nil {
			return fmt.Errorf("publish: %w", *p)
		}
		msg, err := conn.ReceiveMessage(context.Background())
		if err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		cd, ok := msg.(*pgproto3.CopyData)
		if !ok {
			if e, ok := msg.(*pgproto3.ErrorResponse); ok {
				return pgconn.ErrorResponseToPgError(e)
			}
			continue
		}
		reply := false
		switch cd.Data[0] {
		case pglogrepl.PrimaryKeepaliveMessageByteID:
			k, err := pglogrepl.ParsePrimaryKeepaliveMessage(cd.Data[1:])
			if err != nil {
				return err
			}
			reply = k.ReplyRequested || time.Since(reported) > 10*time.Second
		case pglogrepl.XLogDataByteID:
			x, err := pglogrepl.ParseXLogData(cd.Data[1:])
			if err != nil {
				return err
			}
			m, err := pglogrepl.Parse(x.WALData)
			if err != nil {
				return err
			}
			switch m := m.(type) {
			case *pglogrepl.RelationMessage:
				relation, idCol, payloadCol = m.RelationID, -1, -1
				for i, c := range m.Columns {
					switch c.Name {
					case "id":
						idCol = i
					case "payload":
						payloadCol = i
					}
				}
				if idCol < 0 || payloadCol < 0 {
					return errors.New("the relation has no id or payload column")
				}
			case *pglogrepl.InsertMessage:
				if m.RelationID != relation {
					return fmt.Errorf("insert into relation %d before its Relation message", m.RelationID)
				}
				id, payload := m.Tuple.Columns[idCol].Data, m.Tuple.Columns[payloadCol].Data
				out := nats.NewMsg(floorPrefix + ".event")
				out.Data = make([]byte, 0, len(id)+len(payload)+20)
				out.Data = append(append(append(out.Data, `{"id":"`...), id...), `","payload":`...)
				out.Data = append(append(out.Data, payload...), '}')
				out.Header.Set(nats.MsgIdHdr, string(id))
				if _, err := js.PublishMsgAsync(out); err != nil {
					return fmt.Errorf("publish: %w", err)
				}
			case *pglogrepl.CommitMessage:
				lastCommit = m.TransactionEndLSN
			}
		}
		if reply {
			err := pglogrepl.SendStandbyStatusUpdate(context.Background(), conn, pglogrepl.StandbyStatusUpdate{
				WALWritePosition: lastCommit, WALFlushPosition: lastCommit, WALApplyPosition: lastCommit,
			})
			if err != nil {
				return fmt.Errorf("standby status: %w", err)
			}
			reported = time.Now()
		}
	}
}

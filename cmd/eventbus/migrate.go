package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/jackc/pgx/v5"

	"github.com/eventbus/eventbus/config"
	"github.com/eventbus/eventbus/schema"
)

func migrate(ctx context.Context, cfg config.Config, args []string, stdout io.Writer, log *slog.Logger) error {
	if err := noArgs(args); err != nil {
		return err
	}
	cc, err := pgx.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return fmt.Errorf("database: %w", err)
	}
	cc.RuntimeParams["search_path"] = schema.SafeSearchPath // see newPool
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return fmt.Errorf("connect to database: %w", err)
	}
	defer conn.Close(context.Background())
	n, err := schema.Migrate(ctx, conn, log)
	if err != nil {
		return err
	}
	if err := schema.EnsurePublication(ctx, conn, cfg.Publication); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "migrations applied: %d; publication %s ready\n", n, cfg.Publication)
	if writers, err := schema.ProfileWriters(ctx, conn); err != nil {
		log.Warn("could not check who can write public.profiles", "err", err)
	} else if len(writers) > 0 {
		log.Warn("these roles can change organization_id or role in public.profiles, which tenant isolation trusts: their users can move into another organization or make themselves admin",
			"roles", writers, "fix", schema.ProfileWritersFix(writers)+"; then GRANT UPDATE (<the columns users may edit>) ON public.profiles TO authenticated")
	}
	if cfg.RelayRole != "" {
		prune := cfg.Retention > 0
		if err := schema.GrantRelayRole(ctx, conn, cfg.RelayRole, schema.RelayRoleOptions{Prune: prune}); err != nil {
			return err
		}
		log.Info("relay role granted", "role", cfg.RelayRole, "prune", prune)
		fmt.Fprintf(stdout, "relay role %s granted\n", cfg.RelayRole)
	}
	return nil
}

// Package doctor is the seed's Troubleshooting section as checks: `eventbus
// doctor` runs them against the configured database, NATS server and
// relay, and prints each as ok, warn or fail with the fix. The checks read
// only; their SQL belongs to the packages that own what they look at
// (schema, cdc, outbox), and doctor turns the findings into advice.
package doctor

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Status is a check's verdict.
type Status string

// The verdicts: fail makes `eventbus doctor` exit 1.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
)

// Result is one check's verdict, what was found, and what to do about it.
type Result struct {
	Check  string `json:"check"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

func ok(check, format string, args ...any) Result {
	return Result{Check: check, Status: OK, Detail: fmt.Sprintf(format, args...)}
}

func warn(check, fix, format string, args ...any) Result {
	return Result{Check: check, Status: Warn, Detail: fmt.Sprintf(format, args...), Fix: fix}
}

func fail(check, fix, format string, args ...any) Result {
	return Result{Check: check, Status: Fail, Detail: fmt.Sprintf(format, args...), Fix: fix}
}

// check is one named check; it returns one or more results.
type check func(ctx context.Context) []Result

// checkTimeout bounds each check, so an unreachable server costs seconds.
const checkTimeout = 10 * time.Second

// Run runs every check of opts in order and returns the results.
func Run(ctx context.Context, opts Options) []Result {
	var results []Result
	for _, c := range opts.checks() {
		cctx, cancel := context.WithTimeout(ctx, checkTimeout)
		results = append(results, c(cctx)...)
		cancel()
		if ctx.Err() != nil {
			break
		}
	}
	return results
}

// Failed reports whether any result is a fail.
func Failed(results []Result) bool {
	for _, r := range results {
		if r.Status == Fail {
			return true
		}
	}
	return false
}

// Print writes results for a person: one line each, the fix indented below
// a warn or fail, then a summary line.
func Print(w io.Writer, results []Result) {
	counts := map[Status]int{}
	for _, r := range results {
		counts[r.Status]++
		fmt.Fprintf(w, "%-4s  %-22s %s\n", r.Status, r.Check, r.Detail)
		if r.Fix != "" {
			fmt.Fprintf(w, "      %-22s fix: %s\n", "", r.Fix)
		}
	}
	fmt.Fprintf(w, "%d ok, %d warn, %d fail\n", counts[OK], counts[Warn], counts[Fail])
}

// PrintJSON writes results as one JSON object: {"results": [...], "ok": bool}.
func PrintJSON(w io.Writer, results []Result) error {
	if results == nil {
		results = []Result{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(struct {
		OK      bool     `json:"ok"`
		Results []Result `json:"results"`
	}{!Failed(results), results})
}

package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// progress reports how far a long command is on w, one phase after another
// (verify.Progress): a bar redrawn in place on a terminal, a plain line
// every few seconds otherwise (logs, CI), and a last line when a phase ends.
type progress struct {
	w        io.Writer
	terminal bool
	phase    string // what is counted: "replayed events"
	total, n int
	started  time.Time
	last     time.Time // of the last line or redraw
}

func newProgress(w io.Writer) *progress { return &progress{w: w, terminal: isTerminal(w)} }

// Start begins a phase of total items (0 when unknown).
func (p *progress) Start(phase string, total int) {
	p.phase, p.total, p.n = phase, total, 0
	p.started, p.last = time.Now(), time.Now()
}

// Add counts one item.
func (p *progress) Add() {
	p.n++
	every := 5 * time.Second
	if p.terminal {
		every = 100 * time.Millisecond
	}
	if time.Since(p.last) >= every {
		p.print()
	}
}

// Done ends the phase with its last line.
func (p *progress) Done() {
	p.print()
	if p.terminal {
		fmt.Fprintln(p.w)
	}
}

func (p *progress) print() {
	p.last = time.Now()
	rate := float64(p.n) / max(time.Since(p.started).Seconds(), 0.001)
	if !p.terminal {
		fmt.Fprintf(p.w, "%s: %d of %d (%.0f/s)\n", p.phase, p.n, p.total, rate)
		return
	}
	const width = 30
	done := width
	if p.total > 0 {
		done = min(width, p.n*width/p.total)
	}
	// \r returns to the line's start, \x1b[K clears what a longer line left.
	fmt.Fprintf(p.w, "\r%s [%s%s] %d/%d %.0f/s\x1b[K", p.phase, strings.Repeat("#", done), strings.Repeat(".", width-done), p.n, p.total, rate)
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

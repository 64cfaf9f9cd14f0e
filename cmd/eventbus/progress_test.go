package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
)

// Not on a terminal, a phase prints plain lines: none for a short one until
// it is done, then its count.
func TestProgressPrintsPlainLinesOffATerminal(t *testing.T) {
	var b bytes.Buffer
	p := newProgress(&b)
	p.Start("read events", 3)
	for range 3 {
		p.Add()
	}
	assert.Empty(t, b.String(), "no line before 5 s")
	p.Done()
	p.Start("read stream messages", 10)
	p.Add()
	p.Done()
	assert.Regexp(t, `^read events: 3 of 3 \(\d+/s\)\nread stream messages: 1 of 10 \(\d+/s\)\n$`, b.String())
}

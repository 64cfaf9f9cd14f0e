package event

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestValidID(t *testing.T) {
	for _, id := range []string{
		"6f0c1a52-0000-4000-8000-000000000001",
		"6F0C1A52-ABCD-4000-8000-00000000000F",
	} {
		assert.True(t, ValidID(id), id)
	}
	for _, id := range []string{
		"", "6f0c1a52", "6f0c1a52-0000-4000-8000-00000000000", "6f0c1a52-0000-4000-8000-0000000000011",
		"6f0c1a52x0000-4000-8000-000000000001", "6f0c1a52-0000-4000-8000-00000000000g",
		"{6f0c1a52-0000-4000-8000-000000000001}", "6f0c1a52000040008000000000000001",
		"6f0c1a52-0000-4000-8000-00000000000\u00e9",
	} {
		assert.False(t, ValidID(id), id)
	}
}

func TestValidStatus(t *testing.T) {
	for _, s := range []string{StatusPending, StatusProcessing, StatusProcessed, StatusFailed} {
		assert.True(t, ValidStatus(s), s)
	}
	for _, s := range []string{"", "Pending", "done", "failed "} {
		assert.False(t, ValidStatus(s), s)
	}
}

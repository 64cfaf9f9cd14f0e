package cdc

import (
	"testing"

	"github.com/eventbus/eventbus/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

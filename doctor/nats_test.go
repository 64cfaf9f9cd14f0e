package doctor

import "testing"

func TestNATSAtLeast(t *testing.T) {
	for _, c := range []struct {
		version string
		want    bool
	}{
		{"2.10.0", true},
		{"2.10.27", true},
		{"2.11.0-RC.1", true},
		{"2.15.2", true},
		{"3.0.0", true},
		{"2.9.25", false},
		{"2.2.0", false},
		{"1.99.0", false},
		{"", false},
		{"garbage", false},
	} {
		if got := natsAtLeast(c.version, 2, 10); got != c.want {
			t.Errorf("natsAtLeast(%q, 2, 10) = %t, want %t", c.version, got, c.want)
		}
	}
}

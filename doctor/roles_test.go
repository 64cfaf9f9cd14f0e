package doctor

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/eventbus/eventbus/schema"
)

func TestHBAAccess(t *testing.T) {
	local := schema.HBARule{Line: 1, Type: "local", Database: []string{"all"}, User: []string{"all"}, Method: "trust"}
	loopback := schema.HBARule{Line: 2, Type: "host", Database: []string{"all"}, User: []string{"all"}, Address: "127.0.0.1", Netmask: "255.255.255.255", Method: "trust"}
	anyV6 := schema.HBARule{Line: 3, Type: "hostssl", Database: []string{"crm"}, User: []string{"relay"}, Address: "::", Netmask: "::", Method: "scram-sha-256"}
	rejectAll := schema.HBARule{Line: 4, Type: "host", Database: []string{"all"}, User: []string{"relay"}, Address: "all", Method: "reject"}
	anyV4 := schema.HBARule{Line: 5, Type: "host", Database: []string{"all"}, User: []string{"all"}, Address: "0.0.0.0", Netmask: "0.0.0.0", Method: "md5"}
	subnet := schema.HBARule{Line: 6, Type: "host", Database: []string{"replication"}, User: []string{"all"}, Address: "10.0.0.0", Netmask: "255.0.0.0", Method: "md5", Physical: true}
	named := schema.HBARule{File: "/etc/postgresql/hba.d/relay.conf", Line: 7, Type: "host", Database: []string{"replication"}, User: []string{"+standbys", "relay"}, Address: ".example.com", Method: "scram-sha-256", Physical: true}
	sslReject := schema.HBARule{Line: 8, Type: "hostnossl", Database: []string{"all"}, User: []string{"all"}, Address: "all", Method: "reject"}

	for _, c := range []struct {
		name     string
		rules    []schema.HBARule
		physical bool
		lets     []string
		open     int // its line; 0: none
	}{
		{"loopback only", []schema.HBARule{local, loopback}, false,
			[]string{"pg_hba.conf:1 (local all all trust)", "pg_hba.conf:2 (host all all 127.0.0.1/32 trust)"}, 0},
		{"from any address", []schema.HBARule{loopback, anyV6, anyV4}, false,
			[]string{"pg_hba.conf:2 (host all all 127.0.0.1/32 trust)", "pg_hba.conf:3 (hostssl crm relay ::/0 scram-sha-256)"}, 3},
		{"a reject from anywhere first", []schema.HBARule{loopback, rejectAll, anyV4}, false,
			[]string{"pg_hba.conf:2 (host all all 127.0.0.1/32 trust)"}, 0},
		{"a reject of some connections only", []schema.HBARule{sslReject, anyV4}, false,
			[]string{"pg_hba.conf:5 (host all all 0.0.0.0/0 md5)"}, 5},
		{"physical lines apart", []schema.HBARule{anyV4, subnet, named}, true,
			[]string{"pg_hba.conf:6 (host replication all 10.0.0.0/8 md5)", "relay.conf:7 (host replication +standbys,relay .example.com scram-sha-256)"}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			lets, open := hbaAccess(c.rules, c.physical)
			assert.Equal(t, c.lets, lets)
			if c.open == 0 {
				assert.Nil(t, open)
			} else if assert.NotNil(t, open) {
				assert.Equal(t, c.open, open.Line)
			}
		})
	}
}

package monitor

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/eventbus/eventbus/catalog"
	"github.com/eventbus/eventbus/outbox"
)

// typeView is one event type of GET /api/types, the page's Catalog view.
type typeView struct {
	EventType      string               `json:"event_type"`
	CurrentVersion int                  `json:"current_version"`
	Description    string               `json:"description"`
	Versions       []versionView        `json:"versions"`
	Example        *outbox.ExampleEvent `json:"example"` // the latest event of the type; null when none
}

type versionView struct {
	Version     int             `json:"version"`
	Schema      json.RawMessage `json:"schema"`
	Description string          `json:"description"`
	CreatedAt   time.Time       `json:"created_at"`
	Events24h   int             `json:"events_24h"`
}

// listTypes answers GET /api/types: every registered type, its versions
// with their schemas and the events of the last 24 h per version, and its
// latest event as an example, all under the caller's RLS.
func (s *Server) listTypes(r *http.Request, c caller) (int, any, error) {
	var types []typeView
	err := s.inTx(r.Context(), c, func(tx pgx.Tx) error {
		versions, err := catalog.List(r.Context(), tx)
		if err != nil {
			return err
		}
		var names []string
		byType := map[string]int{}
		for _, v := range versions {
			i, ok := byType[v.EventType]
			if !ok {
				i = len(types)
				byType[v.EventType] = i
				types = append(types, typeView{EventType: v.EventType, Versions: []versionView{}})
				names = append(names, v.EventType)
			}
			t := &types[i]
			t.Versions = append(t.Versions, versionView{Version: v.Version, Schema: v.Schema, Description: v.Description, CreatedAt: v.CreatedAt})
			t.CurrentVersion = v.Version // ordered by version: the last is current
			if v.Description != "" {
				t.Description = v.Description
			}
		}
		if len(names) == 0 {
			return nil
		}
		activity, err := outbox.Activity(r.Context(), tx, names, time.Now().Add(-24*time.Hour))
		if err != nil {
			return err
		}
		for i := range types {
			a := activity[types[i].EventType]
			if a == nil {
				continue
			}
			types[i].Example = a.Latest
			for j := range types[i].Versions {
				types[i].Versions[j].Events24h = a.PerVersion[types[i].Versions[j].Version]
			}
		}
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	if types == nil {
		types = []typeView{}
	}
	return http.StatusOK, map[string]any{"types": types}, nil
}

package monitor

import (
	"context"
	"net/http"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/eventbus/eventbus/catalog"
)

// asyncAPI serves the AsyncAPI 3.0 document of the event type catalog, the
// one `eventbus asyncapi` prints: JSON, the API's form, unless the request
// asks for YAML (?format=yaml, or an Accept naming a YAML type and not
// JSON).
func (s *Server) asyncAPI(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	asYAML, err := wantsYAML(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	c, _ := r.Context().Value(callerKey{}).(caller)
	var versions []catalog.Version
	err = s.inTx(ctx, c, func(tx pgx.Tx) error {
		versions, err = catalog.List(ctx, tx)
		return err
	})
	if err != nil {
		if status, msg := classify(err); status != http.StatusInternalServerError {
			writeError(w, status, msg)
			return
		}
		s.internalError(w, r, "asyncapi", err)
		return
	}
	doc, err := catalog.AsyncAPI(versions, catalog.DocOptions{SubjectPrefix: s.opts.SubjectPrefix, NATSURL: s.opts.NATSURL, Version: s.opts.Version})
	contentType := "application/json; charset=utf-8"
	if err == nil && asYAML {
		doc, err = catalog.YAML(doc)
		contentType = "application/yaml; charset=utf-8"
	}
	if err != nil {
		s.internalError(w, r, "asyncapi", err)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(doc)
}

// wantsYAML reads the form a request asks for: ?format= decides when given
// (json or yaml), else an Accept that names YAML and not JSON.
func wantsYAML(r *http.Request) (bool, error) {
	switch f := r.URL.Query().Get("format"); f {
	case "yaml", "yml":
		return true, nil
	case "json":
		return false, nil
	case "":
	default:
		return false, badRequest(http.StatusBadRequest, "format must be json or yaml, got %q", f)
	}
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "yaml") && !strings.Contains(accept, "json"), nil
}

package monitor

import (
	"embed"
	"io/fs"
	"net/http"
)

// web holds the monitor's page: index.html and its assets, plain HTML, CSS
// and JavaScript, no build step.
//
//go:embed web
var web embed.FS

// mountWeb serves the page at /crm/events, its assets under /crm/events/,
// and redirects / to the page.
func (s *Server) mountWeb() {
	sub, err := fs.Sub(web, "web")
	if err != nil {
		panic(err) // the embedded directory is part of the binary
	}
	index := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeFileFS(w, r, sub, "index.html")
	}
	s.mux.HandleFunc("GET /crm/events", index)
	s.mux.HandleFunc("GET /crm/events/{$}", index)
	assets := http.StripPrefix("/crm/events/", http.FileServerFS(sub))
	s.mux.Handle("GET /crm/events/", assets)
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/crm/events", http.StatusFound)
	})
}

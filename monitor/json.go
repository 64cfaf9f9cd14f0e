package monitor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// inputError is a problem with the request, answered with its status.
type inputError struct {
	status int
	msg    string
}

func (e *inputError) Error() string { return e.msg }

func badRequest(status int, format string, args ...any) error {
	return &inputError{status: status, msg: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // readable for curl; escaping protects nothing once the JSON is parsed
	_ = enc.Encode(body)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// decodeBody reads a JSON object into v; an empty body leaves v as it is.
func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var tooBig *http.MaxBytesError
	switch {
	case err == nil:
		if dec.More() {
			return badRequest(http.StatusBadRequest, "the request body holds more than one JSON value")
		}
		return nil
	case errors.Is(err, io.EOF):
		return nil
	case errors.As(err, &tooBig):
		return badRequest(http.StatusRequestEntityTooLarge, "the request body is larger than %d bytes", maxBody)
	default:
		return badRequest(http.StatusBadRequest, "the request body is not valid JSON for this endpoint: %v", err)
	}
}

package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/eventbus/eventbus/event"
)

// Catalog is the compiled catalog the relay checks events against. Its
// zero value is not usable; New returns one with no type registered.
type Catalog struct {
	snap atomic.Pointer[snapshot]
	mu   sync.Mutex // serializes writers; readers take snap alone
}

// snapshot is one immutable state of the catalog.
type snapshot struct {
	types map[string]*registered
}

// registered is one type's versions.
type registered struct {
	current  *compiled
	versions map[int]*compiled
	list     string // "1, 2", for errors
}

// compiled is one version, compiled once.
type compiled struct {
	version int
	header  string // its header value, made once so that a message's costs no allocation
	raw     string // the schema's text: a snapshot reuses the compiled schema while it is unchanged
	schema  *jsonschema.Schema
	broken  error // the stored schema does not compile; its events are not validated
}

// New returns an empty catalog: every type unregistered.
func New() *Catalog {
	c := &Catalog{}
	c.snap.Store(&snapshot{types: map[string]*registered{}})
	return c
}

// Set replaces the whole catalog with versions (List's rows). A stored
// schema that does not compile (written around `eventbus types set`) leaves
// its version without validation; Set returns one error per such version,
// for the log, and applies the rest.
func (c *Catalog) Set(versions []Version) []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.snap.Load()
	byType := map[string][]Version{}
	for _, v := range versions {
		byType[v.EventType] = append(byType[v.EventType], v)
	}
	next := &snapshot{types: make(map[string]*registered, len(byType))}
	var problems []error
	for t, vs := range byType {
		r, errs := build(old.types[t], vs)
		next.types[t] = r
		problems = append(problems, errs...)
	}
	c.snap.Store(next)
	return problems
}

// SetType replaces one type's versions (ListType's rows; none: the type is
// not registered), leaving the others as they are.
func (c *Catalog) SetType(eventType string, versions []Version) []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.snap.Load()
	next := &snapshot{types: maps.Clone(old.types)}
	var problems []error
	if len(versions) == 0 {
		delete(next.types, eventType)
	} else {
		next.types[eventType], problems = build(old.types[eventType], versions)
	}
	c.snap.Store(next)
	return problems
}

// build compiles a type's versions, reusing what old compiled already.
func build(old *registered, versions []Version) (*registered, []error) {
	r := &registered{versions: make(map[int]*compiled, len(versions))}
	var problems []error
	for _, v := range versions {
		raw := string(v.Schema)
		if old != nil {
			if prev := old.versions[v.Version]; prev != nil && prev.raw == raw {
				r.versions[v.Version] = prev
				r.setCurrent(prev)
				continue
			}
		}
		cv := &compiled{version: v.Version, header: strconv.Itoa(v.Version), raw: raw}
		if v.Schema != nil {
			cv.schema, cv.broken = Compile(v.EventType, v.Version, v.Schema)
			if cv.broken != nil {
				cv.broken = fmt.Errorf("schema of %s version %d: %w; its events are not validated", v.EventType, v.Version, cv.broken)
				problems = append(problems, cv.broken)
			}
		}
		r.versions[v.Version] = cv
		r.setCurrent(cv)
	}
	for _, v := range versions {
		if r.list != "" {
			r.list += ", "
		}
		r.list += strconv.Itoa(v.Version)
	}
	return r, problems
}

func (r *registered) setCurrent(v *compiled) {
	if r.current == nil || v.version > r.current.version {
		r.current = v
	}
}

// Registered reports whether eventType has a version.
func (c *Catalog) Registered(eventType string) bool {
	return c.snap.Load().types[eventType] != nil
}

// Check returns the Eventbus-Event-Version of e's message ("" when its type
// is not registered) and validates e's payload against that version's
// schema. An *InvalidError refuses e: metadata.version is an integer that
// names no registered version, or the payload does not validate. Safe for concurrent use.
func (c *Catalog) Check(e *event.Event) (string, error) {
	r := c.snap.Load().types[e.EventType]
	if r == nil {
		return "", nil
	}
	v, err := r.version(e.EventType, e.Metadata)
	if err != nil {
		return "", err
	}
	return v.header, v.validate(e.EventType, e.Payload)
}

// CheckPayload is Check for an event not yet inserted (publish): it returns
// the version that applies (0: the type is not registered). A payload that
// is not a JSON object is left to publish_event, which refuses it with its
// own error (p_payload must be a JSON object), as it did before the catalog.
func (c *Catalog) CheckPayload(eventType string, payload, metadata []byte) (int, error) {
	r := c.snap.Load().types[eventType]
	if r == nil {
		return 0, nil
	}
	if p := bytes.TrimLeft(payload, " \t\r\n"); len(p) > 0 && p[0] != '{' {
		return 0, nil
	}
	v, err := r.version(eventType, metadata)
	if err != nil {
		return 0, err
	}
	return v.version, v.validate(eventType, payload)
}

var versionKey = []byte(`"version"`)

// version is the version named by metadata.version, else the current one.
func (r *registered) version(eventType string, metadata []byte) (*compiled, error) {
	if !bytes.Contains(metadata, versionKey) {
		return r.current, nil // most metadata: no decoding
	}
	var m struct {
		Version json.RawMessage `json:"version"`
	}
	if json.Unmarshal(metadata, &m) != nil || m.Version == nil || string(m.Version) == "null" {
		return r.current, nil
	}
	// Only an integer names a version (CONTRACT.md: "metadata.version when
	// the publisher set it (an integer), else the current version"); a
	// string, a fraction or an object is the publisher's own business.
	f, err := strconv.ParseFloat(string(m.Version), 64)
	if err != nil || f != math.Trunc(f) || f < math.MinInt32 || f > math.MaxInt32 {
		return r.current, nil
	}
	n := int(f)
	v := r.versions[n]
	if v == nil {
		return nil, &InvalidError{EventType: eventType, Reason: fmt.Sprintf(
			"metadata.version %d is not a registered version of %s (registered: %s)", n, eventType, r.list)}
	}
	return v, nil
}

func (v *compiled) validate(eventType string, payload []byte) error {
	if v.schema == nil {
		return nil
	}
	var doc any // a NULL payload validates as JSON null
	if len(payload) > 0 {
		var err error
		if doc, err = jsonschema.UnmarshalJSON(bytes.NewReader(payload)); err != nil {
			return &InvalidError{EventType: eventType, Version: v.version, Reason: "the payload is not valid JSON: " + err.Error()}
		}
	}
	err := v.schema.Validate(doc)
	if err == nil {
		return nil
	}
	reason := oneLine(err.Error())
	if ve, ok := err.(*jsonschema.ValidationError); ok {
		reason = describe(ve)
	}
	return &InvalidError{EventType: eventType, Version: v.version, Reason: reason}
}

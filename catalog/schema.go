package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Draft is the JSON Schema dialect of the catalog's schemas; a schema that
// names another in $schema is refused.
const Draft = "https://json-schema.org/draft/2020-12/schema"

// noLoader loads nothing: a schema is one document, and a $ref to a file or
// a URL must not make the relay read its disk or the network.
type noLoader struct{}

func (noLoader) Load(u string) (any, error) {
	return nil, fmt.Errorf("$ref to %s: schemas are self-contained; external references are not loaded", u)
}

// Compile compiles a payload schema of eventType's version: JSON, a valid
// JSON Schema 2020-12 (checked against its metaschema), with no external
// references. Formats ("uuid", "date-time", "email"…) are asserted, not
// only annotations: a schema says "format": "uuid" to refuse what is not
// one. The error is one line.
func Compile(eventType string, version int, schema []byte) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return nil, fmt.Errorf("the schema is not valid JSON: %v", err)
	}
	if obj, ok := doc.(map[string]any); ok {
		if d, ok := obj["$schema"]; ok && d != Draft && d != Draft+"#" {
			return nil, fmt.Errorf("the schema's $schema is %v; eventbus takes JSON Schema 2020-12 (%s)", d, Draft)
		}
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	loc := "mem://eventbus/" + url.PathEscape(eventType) + "/" + strconv.Itoa(version) + ".json"
	if err := c.AddResource(loc, doc); err != nil {
		return nil, fmt.Errorf("the schema: %v", err)
	}
	sch, err := c.Compile(loc)
	if err != nil {
		var sve *jsonschema.SchemaValidationError
		if errors.As(err, &sve) {
			var ve *jsonschema.ValidationError
			if errors.As(sve.Err, &ve) {
				return nil, fmt.Errorf("not a valid JSON Schema 2020-12: %s", describe(ve))
			}
		}
		return nil, fmt.Errorf("not a valid JSON Schema 2020-12: %s", oneLine(strings.ReplaceAll(err.Error(), loc, "the schema")))
	}
	return sch, nil
}

// InvalidError is a payload (or metadata.version) that its type's catalog
// refuses. The relay fails the event at once; publish refuses it.
type InvalidError struct {
	EventType string
	Version   int // 0: the version itself is the problem
	Reason    string
}

func (e *InvalidError) Error() string {
	if e.Version == 0 {
		return e.Reason
	}
	return fmt.Sprintf("payload does not match the schema of %s version %d: %s", e.EventType, e.Version, e.Reason)
}

var printer = message.NewPrinter(language.English)

// describe words a validation error in one line: the first failing leaf
// as "at <JSON path>: <rule>: <what>", and how many more failed.
func describe(ve *jsonschema.ValidationError) string {
	var leaves []*jsonschema.ValidationError
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			leaves = append(leaves, e)
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	leaf := leaves[0]
	loc := leaf.InstanceLocation
	if r, ok := leaf.ErrorKind.(*kind.Required); ok && len(r.Missing) > 0 {
		loc = append(loc[:len(loc):len(loc)], r.Missing[0])
	}
	rule := strings.Join(leaf.ErrorKind.KeywordPath(), "/")
	s := fmt.Sprintf("at %s: %s: %s", jsonPath(loc), rule, leaf.ErrorKind.LocalizedString(printer))
	if n := len(leaves) - 1; n > 0 {
		s += fmt.Sprintf(" (and %d more)", n)
	}
	return oneLine(s)
}

// jsonPath writes an instance location as a JSONPath: $.lead.tags[0].
func jsonPath(tokens []string) string {
	var b strings.Builder
	b.WriteByte('$')
	for _, t := range tokens {
		switch {
		case isIndex(t):
			b.WriteString("[" + t + "]")
		case isName(t):
			b.WriteString("." + t)
		default:
			b.WriteString("[" + strconv.Quote(t) + "]")
		}
	}
	return b.String()
}

// isIndex: the token of an array element. An object key of digits looks
// the same; the path still finds it in most JSONPath readers.
func isIndex(t string) bool {
	if t == "" {
		return false
	}
	for _, c := range t {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func isName(t string) bool {
	if t == "" {
		return false
	}
	for i, c := range t {
		if c != '_' && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && (i == 0 || !(c >= '0' && c <= '9')) {
			return false
		}
	}
	return true
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

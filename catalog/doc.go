// Package catalog is the registry of event types: public.event_types holds
// every version of a type, each with an optional JSON Schema (2020-12) of
// its payload; the highest version is the type's current one.
//
// The relay asks the catalog two things of every event it publishes (Check):
// which version the message carries in its Eventbus-Event-Version header,
// and whether the payload validates against that version's schema.
//
//   - The version is metadata.version when the publisher set it (an
//     integer that must name a registered version), else the current
//     version. A type with no row is not registered: no header, no
//     validation, and the check costs one map lookup.
//   - A payload that does not validate is refused with an *InvalidError,
//     one line naming the JSON path and the rule (`at $.lead_id: type: got
//     number, want string`); the relay marks the event failed at once, with
//     no retries, since the same payload will never pass.
//
// Each schema is compiled once (Compile), keyed by type and version and
// reused as long as its text is unchanged. The compiled catalog is an
// immutable snapshot behind an atomic pointer: the hot path takes no lock.
//
// Following changes: a statement trigger on event_types sends NOTIFY
// eventbus_event_types; the relay's Follower service LISTENs on its own
// connection and reloads the whole catalog on each notification (coalesced:
// a burst of changes is one reload). Because a notification is lost while
// the listening connection is down (a restart of PostgreSQL, a network
// break), the Follower also reloads on every (re)connection and every
// ReloadInterval (30s): a change reaches a running relay within a second
// normally, within the interval in the worst case. The relay's role only
// needs SELECT on event_types (schema.GrantRelayRole); LISTEN needs no
// privilege.
//
// Which version applies is decided when the event is published, not when it
// was inserted: an event inserted before a new version was added, and
// published after, is checked against the new current version unless its
// metadata names one. Publishers that care name the version.
//
// The package also writes the AsyncAPI 3.0 document of the catalog
// (AsyncAPI), served by `eventbus asyncapi` and GET /api/asyncapi.
package catalog

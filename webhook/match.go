package webhook

import "strings"

// MatchType reports whether eventType matches a NATS-style pattern over its
// dot-separated tokens: "*" matches one token, a final ">" one or more.
func MatchType(pattern, eventType string) bool {
	p, t := strings.Split(pattern, "."), strings.Split(eventType, ".")
	for i, pt := range p {
		if pt == ">" {
			return i == len(p)-1 && len(t) > i
		}
		if i >= len(t) || (pt != "*" && pt != t[i]) {
			return false
		}
	}
	return len(p) == len(t)
}

// matches reports whether an endpoint takes an event: its organization or
// every organization, and a matching pattern (none: every type).
func (e *Endpoint) matches(organizationID, eventType string) bool {
	if !e.Enabled || (e.OrganizationID != "" && e.OrganizationID != organizationID) {
		return false
	}
	if len(e.EventTypes) == 0 {
		return true
	}
	for _, p := range e.EventTypes {
		if MatchType(p, eventType) {
			return true
		}
	}
	return false
}

// ValidPattern reports whether p is a pattern MatchType understands: tokens
// of letters, digits, '_' and '-', "*", or a final ">".
func ValidPattern(p string) bool {
	tokens := strings.Split(p, ".")
	for i, t := range tokens {
		switch {
		case t == "*":
		case t == ">":
			if i != len(tokens)-1 {
				return false
			}
		case t == "" || strings.Trim(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != "":
			return false
		}
	}
	return true
}

package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"meeting.dev/meeting/internal/auth"
	"meeting.dev/meeting/internal/meeting"
)

// Limits on input, documented in docs/openapi.yaml; the meeting rules
// (names, windows, participants) are the service's.
const (
	defaultPageSize  = 20
	minPasswordBytes = 8
	// maxUsernameBytes is the longest username (ASCII), checked before
	// anything else looks at it.
	maxUsernameBytes = 100
)

var (
	earliestTime  = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	latestTime    = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	usernameRegex = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{2,99}$`)
)

// decodeJSON reads exactly one JSON object from body into v, refusing
// unknown fields, and describes what is wrong in words a client can act on.
//
// encoding/json alone would take the last of repeated keys, match keys
// without case ({"name":"a","NAME":"b"} sets name to "b") and replace invalid
// UTF-8 silently; decodeJSON refuses all three.
func decodeJSON(body io.Reader, v any) error {
	raw, err := io.ReadAll(body) // body is limited by limitBody
	if err != nil {
		return describeJSONError(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describeJSONError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("request body has data after the JSON object")
	}
	if err := checkObject(raw); err != nil {
		return err
	}
	if !utf8.Valid(raw) {
		return badRequest("request body must be valid UTF-8")
	}
	return nil
}

// checkObject walks the keys of the JSON object in raw (which decoded
// without error): a key may appear once, in any letter case, and each value
// must be valid UTF-8.
func checkObject(raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil // null: nothing to check
	}
	seen := map[string]string{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return badRequest("malformed request body: " + err.Error())
		}
		key, _ := t.(string)
		folded := foldKey(key)
		if first, dup := seen[folded]; dup {
			if first == key {
				return badRequest(fmt.Sprintf("duplicate key %q: send each field once", key))
			}
			return badRequest(fmt.Sprintf("duplicate key %q (also sent as %q): send each field once, in lower case", key, first))
		}
		seen[folded] = key
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return badRequest("malformed request body: " + err.Error())
		}
		if !utf8.Valid(v) {
			return badRequest(fmt.Sprintf("field %s must be valid UTF-8", key))
		}
	}
	return nil
}

// foldKey maps s to one representative of the strings encoding/json takes
// as the same key: each rune becomes the smallest of its case-folding orbit
// (so "NAME", "name" and "name" with a Kelvin sign for k all fold alike).
func foldKey(s string) string {
	var b strings.Builder
	for _, r := range s {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b.WriteRune(least)
	}
	return b.String()
}

func describeJSONError(err error) error {
	var (
		syntax  *json.SyntaxError
		typ     *json.UnmarshalTypeError
		tooBig  *http.MaxBytesError
		invalid *json.InvalidUnmarshalError
	)
	switch {
	case errors.As(err, &tooBig):
		return &inputError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit)}
	case errors.Is(err, io.EOF):
		return badRequest("request body is empty: send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("request body ends in the middle of the JSON object")
	case errors.As(err, &syntax):
		return badRequest(fmt.Sprintf("malformed JSON at byte %d: %v", syntax.Offset, err))
	case errors.As(err, &typ):
		if typ.Field == "" {
			return badRequest("request body must be a JSON object")
		}
		return badRequest(fmt.Sprintf("field %s must be %s", typ.Field, jsonKind(typ.Type.Kind().String())))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badRequest("unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field "))
	case errors.As(err, &invalid):
		return fmt.Errorf("decode request: %w", err)
	default:
		return badRequest("malformed request body: " + err.Error())
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int64", "int", "uint64":
		return "a whole number"
	case "string":
		return "a string"
	case "slice":
		return "an array"
	default:
		return "of another type"
	}
}

// credentials is the body of login and register.
type credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func parseCredentials(body io.Reader, forRegister bool) (credentials, error) {
	var in credentials
	if err := decodeJSON(body, &in); err != nil {
		return in, err
	}
	if forRegister {
		if !usernameRegex.MatchString(in.Username) {
			return in, badRequest("username must be 3 to 100 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter or digit")
		}
		return in, checkNewPassword("password", in.Password)
	}
	// Login checks the same limits, so nothing larger than a real username
	// or password reaches the password check or the login limiter. Case is
	// free: usernames compare without it.
	if in.Username == "" || in.Password == "" {
		return in, badRequest("username and password are required")
	}
	if len(in.Username) > maxUsernameBytes || !usernameRegex.MatchString(strings.ToLower(in.Username)) {
		return in, badRequest("username must be 3 to 100 characters: letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	if len(in.Password) > auth.MaxPasswordBytes {
		return in, badRequest(fmt.Sprintf("password must be at most %d bytes long", auth.MaxPasswordBytes))
	}
	return in, nil
}

func checkNewPassword(field, p string) error {
	if len(p) < minPasswordBytes || len(p) > auth.MaxPasswordBytes {
		return badRequest(fmt.Sprintf("%s must be %d to %d bytes long", field, minPasswordBytes, auth.MaxPasswordBytes))
	}
	if !utf8.ValidString(p) {
		return badRequest(field + " must be valid UTF-8")
	}
	return nil
}

// passwordChange is the body of PUT /auth/user/password.
type passwordChange struct {
	OldPassword string `json:"old_password"`
	NewPassword string `json:"new_password"`
}

func parsePasswordChange(body io.Reader) (passwordChange, error) {
	var in passwordChange
	if err := decodeJSON(body, &in); err != nil {
		return in, err
	}
	if in.OldPassword == "" {
		return in, badRequest("old_password is required")
	}
	return in, checkNewPassword("new_password", in.NewPassword)
}

// meetingInput is the body of create (all of name, begin_at and end_at
// required; identity and max_participants optional) and edit (identity
// required, the rest optional).
type meetingInput struct {
	Identity        *string  `json:"identity"`
	Name            *string  `json:"name"`
	BeginAt         *int64   `json:"begin_at"`
	EndAt           *int64   `json:"end_at"`
	MaxParticipants *int     `json:"max_participants"`
	Participants    []string `json:"participants"`
}

// parseCreate decodes a create request; the service checks its rules.
func parseCreate(body io.Reader) (meeting.NewMeeting, error) {
	var in meetingInput
	if err := decodeJSON(body, &in); err != nil {
		return meeting.NewMeeting{}, err
	}
	if in.Name == nil || in.BeginAt == nil || in.EndAt == nil {
		return meeting.NewMeeting{}, badRequest("name, begin_at and end_at are required")
	}
	out := meeting.NewMeeting{Name: *in.Name}
	var err error
	if in.Identity != nil { // optional: the server makes a UUID when it is left out
		if out.Identity, err = checkIdentity(*in.Identity); err != nil {
			return out, err
		}
	}
	if in.MaxParticipants != nil { // 0 is refused here, not taken for the default
		if err := meeting.CheckMaxParticipants(*in.MaxParticipants); err != nil {
			return out, err
		}
		out.MaxParticipants = *in.MaxParticipants
	}
	if out.BeginAt, err = checkTime("begin_at", *in.BeginAt); err != nil {
		return out, err
	}
	if out.EndAt, err = checkTime("end_at", *in.EndAt); err != nil {
		return out, err
	}
	if out.Participants, err = checkUsernames(in.Participants); err != nil {
		return out, err
	}
	return out, nil
}

// parseEdit decodes an edit request: nil fields of the change stay as they
// are; the service checks its rules.
func parseEdit(body io.Reader) (string, meeting.Change, error) {
	var in meetingInput
	if err := decodeJSON(body, &in); err != nil {
		return "", meeting.Change{}, err
	}
	var out meeting.Change
	if in.Identity == nil {
		return "", out, badRequest("identity is required")
	}
	id, err := checkIdentity(*in.Identity)
	if err != nil {
		return "", out, err
	}
	if in.Participants != nil {
		return "", out, badRequest("participants are changed through /auth/meeting/members")
	}
	out.Name = in.Name
	out.MaxParticipants = in.MaxParticipants
	if in.BeginAt != nil {
		t, err := checkTime("begin_at", *in.BeginAt)
		if err != nil {
			return "", out, err
		}
		out.BeginAt = &t
	}
	if in.EndAt != nil {
		t, err := checkTime("end_at", *in.EndAt)
		if err != nil {
			return "", out, err
		}
		out.EndAt = &t
	}
	return id, out, nil
}

// joinInput is the body of POST /auth/meeting/join.
type joinInput struct {
	Identity string `json:"identity"`
}

func parseJoin(body io.Reader) (string, error) {
	var in joinInput
	if err := decodeJSON(body, &in); err != nil {
		return "", err
	}
	return checkIdentity(in.Identity)
}

func checkTime(field string, ms int64) (time.Time, error) {
	t := time.UnixMilli(ms).UTC()
	if t.Before(earliestTime) || !t.Before(latestTime) {
		return time.Time{}, badRequest(fmt.Sprintf("%s must be milliseconds since the epoch between %d (2000-01-01) and %d (2100-01-01)",
			field, earliestTime.UnixMilli(), latestTime.UnixMilli()))
	}
	return t, nil
}

// checkIdentity returns a meeting identity lower-cased, as it is stored,
// or why it is not one (meeting.CheckIdentity: 1 to 64 letters, digits, '_',
// '.' or '-', starting with a letter or digit; any letter case, so the
// UUIDs of old clients keep working).
func checkIdentity(id string) (string, error) {
	if id == "" {
		return "", badRequest("identity is required")
	}
	id = strings.ToLower(id)
	if err := meeting.CheckIdentity(id); err != nil {
		return "", badRequest(err.Error())
	}
	return id, nil
}

func checkUsername(name string) error {
	if !usernameRegex.MatchString(strings.ToLower(name)) {
		return badRequest(fmt.Sprintf("%q is not a valid username", name))
	}
	return nil
}

// checkUsernames validates a list of usernames, lower-cases them (usernames
// compare without case) and drops repeats.
func checkUsernames(names []string) ([]string, error) {
	if len(names) > meeting.MaxInvites {
		return nil, badRequest(fmt.Sprintf("at most %d participants per request", meeting.MaxInvites))
	}
	seen := make(map[string]bool, len(names))
	var out []string
	for _, n := range names {
		if err := checkUsername(n); err != nil {
			return nil, err
		}
		n = strings.ToLower(n)
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out, nil
}

package server

import (
	"strings"
	"testing"
)

// Login input is held to registration's limits (issue 11, item 1): a 60 KB
// username or a 73-byte password never reaches the limiter or bcrypt.
func TestParseCredentialsLogin(t *testing.T) {
	for _, c := range []struct {
		name, body, err string
	}{
		{"plain", `{"username":"alice","password":"pw"}`, ""},
		{"any case", `{"username":"Alice","password":"pw"}`, ""},
		{"72-byte password", `{"username":"alice","password":"` + strings.Repeat("p", 72) + `"}`, ""},
		{"73-byte password", `{"username":"alice","password":"` + strings.Repeat("p", 73) + `"}`, "at most 72 bytes"},
		{"60 KB username", `{"username":"` + strings.Repeat("u", 60<<10) + `","password":"pw"}`, "3 to 100 characters"},
		{"101-character username", `{"username":"` + strings.Repeat("u", 101) + `","password":"pw"}`, "3 to 100 characters"},
		{"username with a space", `{"username":"al ice","password":"pw"}`, "3 to 100 characters"},
		{"username with a control character", `{"username":"al\u0000ice","password":"pw"}`, "3 to 100 characters"},
		{"no password", `{"username":"alice","password":""}`, "required"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseCredentials(strings.NewReader(c.body), false)
			if c.err == "" && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("got %v, want %q", err, c.err)
			}
		})
	}
}

package storetest

import (
	_ "embed"
	"strings"
)

//go:embed seed.sql
var seedSQL string

// SeedStatements returns the seed project's DDL and sample rows (its root
// user logs in with the password "1233456"), one statement each, with the
// collation changed to one MariaDB has. Tests load them to prove that a
// seed database upgrades in place.
func SeedStatements() []string {
	var out []string
	for _, s := range strings.Split(seedSQL, ";\n") {
		var lines []string
		for _, l := range strings.Split(s, "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "--") {
				lines = append(lines, l)
			}
		}
		s = strings.TrimSpace(strings.Join(lines, "\n"))
		if s != "" {
			out = append(out, strings.ReplaceAll(s, "utf8mb4_0900_ai_ci", "utf8mb4_general_ci"))
		}
	}
	return out
}

package main

import (
	"context"
	"errors"
	"io"
)

// runLoadtest is being built; see the open issue for this role.
func runLoadtest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("the loadtest role is not built yet")
}

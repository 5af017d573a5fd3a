package main

import (
	"context"
	"errors"
	"io"
)

// runTURN is being built; see the open issue for this role.
func runTURN(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("the turn role is not built yet")
}

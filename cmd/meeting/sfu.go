package main

import (
	"context"
	"errors"
	"io"
)

// runSFU is being built; see the open issue for this role.
func runSFU(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("the sfu role is not built yet")
}

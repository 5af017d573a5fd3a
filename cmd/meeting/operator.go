package main

import (
	"context"
	"errors"
	"io"
)

// runOperator is being built; see the open issue for this role.
func runOperator(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("the operator role is not built yet")
}

package main

import (
	"context"
	"errors"
	"io"
)

func runStandalone(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("standalone is not built yet")
}

func runAPI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("the api role is not built yet")
}

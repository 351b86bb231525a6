package bench

import (
	"context"
	"errors"
	"io"
)

// RunHTTP implements `cellar bench http`.
func RunHTTP(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("bench: http: not implemented yet")
}

package db

import (
	"context"
	"errors"
	"io"
)

// Dump is being written.
func (d *DB) Dump(ctx context.Context, w io.Writer, tables []string) (Position, error) {
	return Position{}, errors.New("dump: not yet")
}

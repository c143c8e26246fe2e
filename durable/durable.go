// Package durable holds what makes a file system change survive a crash,
// beyond fsyncing the file itself.
package durable

import (
	"os"
	"path/filepath"
)

// SyncDir fsyncs the directory dir, so that a file created, renamed or
// removed in it stays so after a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// WriteFile writes b to path so that a crash leaves either the old file or
// the whole new one: through a temporary file beside it, fsynced, renamed
// over path, and the directory fsynced.
func WriteFile(path string, b []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

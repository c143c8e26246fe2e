// Package durable holds what makes a file system change survive a crash,
// beyond fsyncing the file itself.
package durable

import "os"

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

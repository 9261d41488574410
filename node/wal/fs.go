package wal

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// FS is the part of the filesystem the WAL and the snapshot store use. It exists so tests
// can inject failures (see FaultFS); OSFS is the real one.
type FS interface {
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	ReadDir(name string) ([]os.DirEntry, error)
	Remove(name string) error
	Rename(oldpath, newpath string) error
	MkdirAll(path string, perm os.FileMode) error
	Stat(name string) (os.FileInfo, error)
}

// File is an open file of an FS.
type File interface {
	io.Writer
	io.ReaderAt
	io.Seeker
	io.Closer
	// Sync makes the file's data durable. For files opened for writing, OSFS uses
	// fdatasync: the size is flushed with the data, other metadata is not needed.
	Sync() error
	Truncate(size int64) error
	Name() string
}

// OSFS is the operating system's filesystem.
type OSFS struct{}

var _ FS = OSFS{}

func (OSFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &osFile{File: f, dataOnly: flag&(os.O_WRONLY|os.O_RDWR) != 0}, nil
}

func (OSFS) ReadDir(name string) ([]os.DirEntry, error) { return os.ReadDir(name) }
func (OSFS) Remove(name string) error                   { return os.Remove(name) }
func (OSFS) Rename(oldpath, newpath string) error       { return os.Rename(oldpath, newpath) }
func (OSFS) MkdirAll(path string, perm os.FileMode) error {
	return os.MkdirAll(path, perm)
}
func (OSFS) Stat(name string) (os.FileInfo, error) { return os.Stat(name) }

type osFile struct {
	*os.File
	// dataOnly: a file opened for writing needs only its data and size durable (fdatasync);
	// a directory opened read-only to persist its entries gets a full fsync.
	dataOnly bool
}

func (f *osFile) Sync() error {
	if f.dataOnly {
		return datasync(f.File)
	}
	return f.File.Sync()
}

// SyncDir makes the creation, removal and renaming of entries in dir durable.
func SyncDir(fsys FS, dir string) error {
	d, err := fsys.OpenFile(dir, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("open directory %s to fsync it: %w", dir, err)
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	if err := d.Close(); err != nil {
		return fmt.Errorf("close directory %s: %w", dir, err)
	}
	return nil
}

// readWholeFile reads name into memory through fsys.
func readWholeFile(fsys FS, name string) ([]byte, error) {
	info, err := fsys.Stat(name)
	if err != nil {
		return nil, err
	}
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, info.Size())
	n, err := f.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return buf[:n], nil
}

// joinDir is filepath.Join kept in one place so names in errors match names on disk.
func joinDir(dir, name string) string { return filepath.Join(dir, name) }

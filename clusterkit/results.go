package clusterkit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// WriteResults writes a harness run's result files (name → renderer) into dir, and those
// named PREFIX.EXT also as latestDir/PREFIX-latest.EXT: the copies the docs link to.
func WriteResults(dir, latestDir, prefix string, files map[string]func(io.Writer) error) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create results dir: %w", err)
	}
	for name, render := range files {
		var b bytes.Buffer
		if err := render(&b); err != nil {
			return fmt.Errorf("render %s: %w", name, err)
		}
		paths := []string{filepath.Join(dir, name)}
		if ext, ok := strings.CutPrefix(name, prefix+"."); ok {
			paths = append(paths, filepath.Join(latestDir, prefix+"-latest."+ext))
		}
		for _, path := range paths {
			if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
				return fmt.Errorf("write result: %w", err)
			}
		}
	}
	return nil
}

// IndentedJSON renders v as indented JSON and a newline, for WriteResults.
func IndentedJSON(v any) func(io.Writer) error {
	return func(w io.Writer) error {
		raw, err := json.MarshalIndent(v, "", "  ")
		if err == nil {
			_, err = w.Write(append(raw, '\n'))
		}
		return err
	}
}

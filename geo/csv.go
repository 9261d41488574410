package geo

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// LoadCSV reads a matrix file (see ParseCSV); errors name the file.
func LoadCSV(path string) (Matrix, error) {
	f, err := os.Open(path)
	if err != nil {
		return Matrix{}, fmt.Errorf("open rtt matrix: %w", err)
	}
	defer f.Close()
	m, err := ParseCSV(f)
	if err != nil {
		return Matrix{}, fmt.Errorf("rtt matrix %s: %w", path, err)
	}
	return m, nil
}

// ParseCSV reads a matrix in milliseconds with DefaultTolerance: lines starting with # are
// comments, the first record is `region,R1,...,Rn`, then one row `Ri,rtt1,...,rttn` per
// region, in any order. Values may be fractional (measured RTTs).
func ParseCSV(r io.Reader) (Matrix, error) { return ParseCSVTolerance(r, DefaultTolerance) }

// ParseCSVTolerance is ParseCSV with an explicit asymmetry tolerance.
func ParseCSVTolerance(r io.Reader, tol Tolerance) (Matrix, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1 // row lengths are checked here, with errors that name the region
	cr.TrimLeadingSpace = true

	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return Matrix{}, ErrEmpty
	}
	if err != nil {
		return Matrix{}, fmt.Errorf("read header: %w", err)
	}
	if !strings.EqualFold(strings.TrimSpace(header[0]), "region") {
		return Matrix{}, fmt.Errorf("header must start with \"region\", got %q", header[0])
	}
	regions := make([]string, 0, len(header)-1)
	column := map[string]int{}
	for _, name := range header[1:] {
		name = strings.TrimSpace(name)
		if name == "" {
			return Matrix{}, fmt.Errorf("%w: header has an empty region name", ErrMissingRegion)
		}
		if _, dup := column[name]; dup {
			return Matrix{}, fmt.Errorf("%w %q in the header", ErrDuplicate, name)
		}
		column[name] = len(regions)
		regions = append(regions, name)
	}
	if len(regions) == 0 {
		return Matrix{}, ErrEmpty
	}

	rows := make([][]time.Duration, len(regions))
	for {
		record, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Matrix{}, fmt.Errorf("read row: %w", err)
		}
		line, _ := cr.FieldPos(0)
		name := strings.TrimSpace(record[0])
		i, known := column[name]
		switch {
		case !known:
			return Matrix{}, fmt.Errorf("%w: line %d: row %q has no column in the header", ErrMissingRegion, line, name)
		case rows[i] != nil:
			return Matrix{}, fmt.Errorf("%w %q: line %d is its second row", ErrDuplicate, name, line)
		case len(record)-1 != len(regions):
			return Matrix{}, fmt.Errorf("%w: line %d: row %s has %d values, the header has %d regions",
				ErrNotSquare, line, name, len(record)-1, len(regions))
		}
		row := make([]time.Duration, len(regions))
		for j, cell := range record[1:] {
			d, err := parseMillis(cell)
			if err != nil {
				return Matrix{}, fmt.Errorf("%w: line %d: row %s column %s: %w", ErrBadCell, line, name, regions[j], err)
			}
			row[j] = d
		}
		rows[i] = row
	}
	for i, row := range rows {
		if row == nil {
			return Matrix{}, fmt.Errorf("%w: %s has a column but no row", ErrMissingRegion, regions[i])
		}
	}
	return New(regions, rows, tol)
}

func parseMillis(cell string) (time.Duration, error) {
	cell = strings.TrimSpace(cell)
	ms, err := strconv.ParseFloat(cell, 64)
	if err != nil || math.IsNaN(ms) || math.IsInf(ms, 0) {
		return 0, fmt.Errorf("%q is not a number of milliseconds", cell)
	}
	if math.Abs(ms) > float64(math.MaxInt64/int64(time.Millisecond)) {
		return 0, fmt.Errorf("%q milliseconds is out of range", cell)
	}
	return time.Duration(math.Round(ms * float64(time.Millisecond))), nil
}

// WriteCSV writes m in the format ParseCSV reads, in milliseconds, so RTTs measured by a
// cluster can be saved and fed back to tune.
func (m Matrix) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	header := append([]string{"region"}, m.regions...)
	if err := cw.Write(header); err != nil {
		return fmt.Errorf("write rtt matrix header: %w", err)
	}
	for i, r := range m.regions {
		record := []string{r}
		for _, d := range m.rtt[i] {
			record = append(record, strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', -1, 64))
		}
		if err := cw.Write(record); err != nil {
			return fmt.Errorf("write rtt matrix row %s: %w", r, err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("write rtt matrix: %w", err)
	}
	return nil
}

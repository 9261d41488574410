package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// decodeValue stores raw (a YAML scalar, or a string from the environment, a flag or an
// override) into dst, the pointer a field's ref returns. Errors name the value and what it
// should have been; the caller adds the key.
func decodeValue(dst any, raw any) error {
	switch p := dst.(type) {
	case *string:
		s, ok := raw.(string)
		if !ok {
			return fmt.Errorf("%s is not a string; quote it", show(raw))
		}
		*p = s
	case *bool:
		switch r := raw.(type) {
		case bool:
			*p = r
		case string:
			b, err := strconv.ParseBool(strings.TrimSpace(r))
			if err != nil {
				return fmt.Errorf("%s is not a boolean (true or false)", show(raw))
			}
			*p = b
		default:
			return fmt.Errorf("%s is not a boolean (true or false)", show(raw))
		}
	case *uint64:
		n, err := toUint64(raw)
		if err != nil {
			return err
		}
		*p = n
	case *int:
		n, err := toInt64(raw)
		if err != nil {
			return err
		}
		if n < math.MinInt || n > math.MaxInt {
			return fmt.Errorf("%s is out of range", show(raw))
		}
		*p = int(n)
	case *int64:
		n, err := toInt64(raw)
		if err != nil {
			return err
		}
		*p = n
	case *float64:
		f, err := toFloat(raw)
		if err != nil {
			return err
		}
		*p = f
	case *time.Duration:
		d, err := toDuration(raw)
		if err != nil {
			return err
		}
		*p = d
	case *[]string:
		l, err := toStringList(raw)
		if err != nil {
			return err
		}
		*p = l
	default:
		return fmt.Errorf("no decoder for %T", dst)
	}
	return nil
}

// show renders a raw value the way the user wrote it: strings quoted, numbers plain.
func show(raw any) string {
	switch r := raw.(type) {
	case string:
		return strconv.Quote(r)
	case map[string]any, map[any]any:
		return "a mapping"
	case []any:
		return "a list"
	}
	return fmt.Sprint(raw)
}

func toInt64(raw any) (int64, error) {
	notInt := fmt.Errorf("%s is not an integer", show(raw))
	switch r := raw.(type) {
	case int:
		return int64(r), nil
	case int64:
		return r, nil
	case uint64:
		if r > math.MaxInt64 {
			return 0, fmt.Errorf("%s is out of range", show(raw))
		}
		return int64(r), nil
	case float64:
		// YAML reads 1e6 as a float; accept it when it is a whole number.
		if r != math.Trunc(r) || math.IsInf(r, 0) {
			return 0, notInt
		}
		if r < math.MinInt64 || r >= math.MaxInt64 {
			return 0, fmt.Errorf("%s is out of range", show(raw))
		}
		return int64(r), nil
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(r), 10, 64)
		if err != nil {
			if f, ferr := strconv.ParseFloat(strings.TrimSpace(r), 64); ferr == nil && !strings.ContainsAny(r, "xXpP_") {
				return toInt64(f)
			}
			return 0, notInt
		}
		return n, nil
	}
	return 0, notInt
}

func toUint64(raw any) (uint64, error) {
	notUint := fmt.Errorf("%s is not a non-negative integer", show(raw))
	switch r := raw.(type) {
	case uint64:
		return r, nil
	case string:
		n, err := strconv.ParseUint(strings.TrimSpace(r), 10, 64)
		if err == nil {
			return n, nil
		}
	case float64:
		if r >= 0 && r == math.Trunc(r) && r < math.MaxUint64 {
			return uint64(r), nil
		}
		return 0, notUint
	}
	n, err := toInt64(raw)
	if err != nil || n < 0 {
		return 0, notUint
	}
	return uint64(n), nil
}

func toFloat(raw any) (float64, error) {
	var f float64
	switch r := raw.(type) {
	case float64:
		f = r
	case int:
		f = float64(r)
	case int64:
		f = float64(r)
	case uint64:
		f = float64(r)
	case string:
		var err error
		if f, err = strconv.ParseFloat(strings.TrimSpace(r), 64); err != nil {
			return 0, fmt.Errorf("%s is not a number", show(raw))
		}
	default:
		return 0, fmt.Errorf("%s is not a number", show(raw))
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%s is not a finite number", show(raw))
	}
	return f, nil
}

func toDuration(raw any) (time.Duration, error) {
	switch r := raw.(type) {
	case time.Duration:
		return r, nil
	case string:
		d, err := time.ParseDuration(strings.TrimSpace(r))
		if err != nil {
			return 0, fmt.Errorf("%s is not a duration (like 400ms, 2s or 1m30s)", show(raw))
		}
		return d, nil
	case int, int64, uint64, float64:
		if fmt.Sprint(r) == "0" {
			return 0, nil
		}
		// A bare number is most likely milliseconds or seconds; guessing either would
		// hide a mistake in the timing everything else depends on.
		return 0, fmt.Errorf("%s is not a duration: give a unit, like %vms or %vs", show(raw), r, r)
	}
	return 0, fmt.Errorf("%s is not a duration (like 400ms, 2s or 1m30s)", show(raw))
}

// toStringList reads a list: a YAML sequence of scalars, or a string of comma-separated
// items, optionally in brackets (from an environment variable, a flag or an override).
func toStringList(raw any) ([]string, error) {
	switch r := raw.(type) {
	case []any:
		out := make([]string, 0, len(r))
		for _, item := range r {
			switch v := item.(type) {
			case string:
				out = append(out, strings.TrimSpace(v))
			case int, int64, uint64:
				out = append(out, fmt.Sprint(v))
			default:
				return nil, fmt.Errorf("item %s is not a name or a number", show(item))
			}
		}
		if len(out) == 0 {
			return nil, nil
		}
		return out, nil
	case []string:
		if len(r) == 0 {
			return nil, nil
		}
		return r, nil
	case string:
		s := strings.TrimSpace(r)
		s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
		var out []string
		for _, part := range strings.Split(s, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
		return out, nil
	case int, int64, uint64:
		return []string{fmt.Sprint(r)}, nil
	}
	return nil, fmt.Errorf("%s is not a list (like [us-west1, europe-west1] or all)", show(raw))
}

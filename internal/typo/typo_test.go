package typo

import "testing"

func TestNearest(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		d    int
	}{{"", "abc", 3}, {"lease", "lease", 0}, {"stauts", "status", 2}, {"GTE", "GET", 2}, {"kitten", "sitting", 3}} {
		if got := Distance(tc.a, tc.b); got != tc.d {
			t.Errorf("Distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.d)
		}
	}
	cmds := []string{"GET", "SET", "STATUS"}
	if got := Nearest("GTE", cmds, 2); got != "GET" {
		t.Errorf("Nearest(GTE) = %q", got)
	}
	if got := Nearest("xyzzy", cmds, 2); got != "" {
		t.Errorf("Nearest(xyzzy) = %q, want none", got)
	}
}

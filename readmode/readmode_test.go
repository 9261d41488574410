package readmode

import (
	"encoding/json"
	"testing"
)

func TestNamesRoundTrip(t *testing.T) {
	for _, m := range All {
		for _, name := range []string{m.String(), " " + m.String() + " ", map[Mode]string{Lease: "LEASE", Index: "Index", Log: "LoG", Stale: "stale"}[m]} {
			if got, err := Parse(name); err != nil || got != m {
				t.Errorf("Parse(%q) = %v, %v; want %v", name, got, err, m)
			}
		}
		raw, err := json.Marshal(struct{ M Mode }{m})
		if err != nil {
			t.Fatal(err)
		}
		var back struct{ M Mode }
		if err := json.Unmarshal(raw, &back); err != nil || back.M != m || string(raw) != `{"M":"`+m.String()+`"}` {
			t.Errorf("JSON %s decoded to %v, %v", raw, back.M, err)
		}
	}
	if _, err := Parse("eventual"); err == nil {
		t.Error("an unknown mode was accepted")
	}
	if _, err := json.Marshal(Mode(9)); err == nil {
		t.Error("mode 9 was encoded")
	}
	if Stale.Linearizable() || !Lease.Linearizable() || Mode(4).Valid() {
		t.Error("Linearizable or Valid is wrong")
	}
}

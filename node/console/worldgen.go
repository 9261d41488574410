//go:build ignore

// worldgen writes assets/world.txt, the land the console's map draws, from Natural Earth's
// 1:110m countries (public domain). Debian ships that file inside python3-geopandas 0.12:
//
//	apt-get download python3-geopandas && dpkg -x python3-geopandas_*.deb /tmp/ne
//	go run worldgen.go -shp /tmp/ne/usr/lib/python3/dist-packages/geopandas/datasets/naturalearth_lowres/naturalearth_lowres.shp
//
// The output's first line is the projection (width, height, north and south latitude of an
// equirectangular map); the second is one SVG path of every country's rings, projected,
// simplified and rounded to a tenth of a pixel. The console reads both, so its regions
// land where the land is.
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"os"
	"strings"
)

const (
	width     = 1000.0
	north     = 84.0
	south     = -58.0 // Tierra del Fuego; Antarctica is left out
	tolerance = 0.8   // pixels: Douglas-Peucker simplification
	minArea   = 3.0   // square pixels: smaller islands are dropped
)

var height = width * (north - south) / 360

type pt struct{ x, y float64 }

func project(lon, lat float64) pt {
	lat = math.Max(south, math.Min(north, lat))
	return pt{(lon + 180) / 360 * width, (north - lat) / (north - south) * height}
}

func main() {
	shp := flag.String("shp", "", "naturalearth_lowres.shp")
	out := flag.String("out", "assets/world.txt", "output file")
	flag.Parse()
	f, err := os.Open(*shp)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	if _, err := io.CopyN(io.Discard, r, 100); err != nil {
		log.Fatal(err)
	}
	var path strings.Builder
	rings, points := 0, 0
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(r, hdr[:]); err == io.EOF {
			break
		} else if err != nil {
			log.Fatal(err)
		}
		content := make([]byte, 2*int(binary.BigEndian.Uint32(hdr[4:])))
		if _, err := io.ReadFull(r, content); err != nil {
			log.Fatal(err)
		}
		if binary.LittleEndian.Uint32(content) != 5 { // polygon
			continue
		}
		numParts := int(binary.LittleEndian.Uint32(content[36:]))
		numPoints := int(binary.LittleEndian.Uint32(content[40:]))
		parts := make([]int, numParts+1)
		for i := 0; i < numParts; i++ {
			parts[i] = int(binary.LittleEndian.Uint32(content[44+4*i:]))
		}
		parts[numParts] = numPoints
		base := 44 + 4*numParts
		for i := 0; i < numParts; i++ {
			var ring []pt
			for j := parts[i]; j < parts[i+1]; j++ {
				off := base + 16*j
				lon := math.Float64frombits(binary.LittleEndian.Uint64(content[off:]))
				lat := math.Float64frombits(binary.LittleEndian.Uint64(content[off+8:]))
				ring = append(ring, project(lon, lat))
			}
			if math.Abs(area(ring)) < minArea {
				continue
			}
			ring = simplify(ring, tolerance)
			if len(ring) < 4 {
				continue
			}
			rings++
			last := pt{math.NaN(), math.NaN()}
			for k, p := range ring[:len(ring)-1] {
				q := pt{math.Round(p.x*10) / 10, math.Round(p.y*10) / 10}
				if q == last {
					continue
				}
				cmd := "L"
				if k == 0 {
					cmd = "M"
				}
				fmt.Fprintf(&path, "%s%s %s", cmd, num(q.x), num(q.y))
				last = q
				points++
			}
			path.WriteString("Z")
		}
	}
	body := fmt.Sprintf("%g %g %g %g\n%s\n", width, math.Round(height*10)/10, north, south, path.String())
	if err := os.WriteFile(*out, []byte(body), 0o644); err != nil {
		log.Fatal(err)
	}
	log.Printf("%d rings, %d points, %d bytes", rings, points, len(body))
}

func num(v float64) string { return strings.TrimSuffix(fmt.Sprintf("%.1f", v), ".0") }

func area(ring []pt) float64 {
	a := 0.0
	for i := 0; i+1 < len(ring); i++ {
		a += ring[i].x*ring[i+1].y - ring[i+1].x*ring[i].y
	}
	return a / 2
}

// simplify is Douglas-Peucker on a closed ring (first point == last point).
func simplify(ring []pt, tol float64) []pt {
	if len(ring) < 4 {
		return ring
	}
	keep := make([]bool, len(ring))
	keep[0], keep[len(ring)-1] = true, true
	// A closed ring's ends coincide: split it at the point farthest from its start.
	far, farD := 0, -1.0
	for i := range ring {
		if d := math.Hypot(ring[i].x-ring[0].x, ring[i].y-ring[0].y); d > farD {
			far, farD = i, d
		}
	}
	keep[far] = true
	var rec func(a, b int)
	rec = func(a, b int) {
		best, bestD := -1, tol
		for i := a + 1; i < b; i++ {
			if d := segDist(ring[i], ring[a], ring[b]); d > bestD {
				best, bestD = i, d
			}
		}
		if best >= 0 {
			keep[best] = true
			rec(a, best)
			rec(best, b)
		}
	}
	rec(0, far)
	rec(far, len(ring)-1)
	var out []pt
	for i, p := range ring {
		if keep[i] {
			out = append(out, p)
		}
	}
	return out
}

func segDist(p, a, b pt) float64 {
	dx, dy := b.x-a.x, b.y-a.y
	l := dx*dx + dy*dy
	if l == 0 {
		return math.Hypot(p.x-a.x, p.y-a.y)
	}
	t := math.Max(0, math.Min(1, ((p.x-a.x)*dx+(p.y-a.y)*dy)/l))
	return math.Hypot(p.x-a.x-t*dx, p.y-a.y-t*dy)
}

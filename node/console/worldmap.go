package console

import (
	"bufio"
	_ "embed"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// world.txt is Natural Earth's 1:110m land (public domain), projected and simplified by
// worldgen.go: its first line is the projection, its second the SVG path.
//
//go:embed assets/world.txt
var worldData string

// worldMap is the projection of the embedded map: equirectangular, Width × Height pixels
// from 180°W to 180°E and from North to South latitude.
type worldMap struct {
	Width, Height float64
	North, South  float64
	Land          string
}

var world = func() worldMap {
	sc := bufio.NewScanner(strings.NewReader(worldData))
	sc.Buffer(nil, len(worldData)+1)
	var w worldMap
	if !sc.Scan() {
		panic("console: assets/world.txt is empty")
	}
	if _, err := fmt.Sscan(sc.Text(), &w.Width, &w.Height, &w.North, &w.South); err != nil {
		panic("console: assets/world.txt: projection line: " + err.Error())
	}
	if !sc.Scan() {
		panic("console: assets/world.txt has no path")
	}
	w.Land = sc.Text()
	return w
}()

// project places a latitude and longitude on the map.
func (w worldMap) project(lat, lon float64) (x, y float64) {
	lat = math.Max(w.South, math.Min(w.North, lat))
	return (lon + 180) / 360 * w.Width, (w.North - lat) / (w.North - w.South) * w.Height
}

// location is where a region's data centres are.
type location struct {
	Lat, Lon float64
	Place    string
}

// regionLocations places cloud regions by name: Google Cloud's (configs/geo uses five), and
// a few other common names. A region not here goes to the strip under the map.
var regionLocations = map[string]location{
	"us-central1":             {41.26, -95.86, "Council Bluffs, Iowa"},
	"us-east1":                {33.20, -80.01, "Moncks Corner, South Carolina"},
	"us-east4":                {39.04, -77.49, "Ashburn, Virginia"},
	"us-east5":                {39.96, -83.00, "Columbus, Ohio"},
	"us-south1":               {32.78, -96.80, "Dallas, Texas"},
	"us-west1":                {45.60, -121.18, "The Dalles, Oregon"},
	"us-west2":                {34.05, -118.24, "Los Angeles, California"},
	"us-west3":                {40.76, -111.89, "Salt Lake City, Utah"},
	"us-west4":                {36.17, -115.14, "Las Vegas, Nevada"},
	"northamerica-northeast1": {45.50, -73.57, "Montréal, Québec"},
	"northamerica-northeast2": {43.65, -79.38, "Toronto, Ontario"},
	"southamerica-east1":      {-23.55, -46.63, "São Paulo, Brazil"},
	"southamerica-west1":      {-33.45, -70.67, "Santiago, Chile"},
	"europe-west1":            {50.45, 3.82, "St. Ghislain, Belgium"},
	"europe-west2":            {51.51, -0.13, "London, England"},
	"europe-west3":            {50.11, 8.68, "Frankfurt, Germany"},
	"europe-west4":            {53.44, 6.83, "Eemshaven, Netherlands"},
	"europe-west6":            {47.37, 8.54, "Zürich, Switzerland"},
	"europe-west8":            {45.46, 9.19, "Milan, Italy"},
	"europe-west9":            {48.86, 2.35, "Paris, France"},
	"europe-west10":           {52.52, 13.40, "Berlin, Germany"},
	"europe-west12":           {45.07, 7.69, "Turin, Italy"},
	"europe-north1":           {60.57, 27.20, "Hamina, Finland"},
	"europe-central2":         {52.23, 21.01, "Warsaw, Poland"},
	"europe-southwest1":       {40.42, -3.70, "Madrid, Spain"},
	"me-west1":                {32.09, 34.78, "Tel Aviv, Israel"},
	"me-central1":             {25.29, 51.53, "Doha, Qatar"},
	"me-central2":             {26.43, 50.10, "Dammam, Saudi Arabia"},
	"africa-south1":           {-26.20, 28.05, "Johannesburg, South Africa"},
	"asia-east1":              {24.05, 120.52, "Changhua County, Taiwan"},
	"asia-east2":              {22.32, 114.17, "Hong Kong"},
	"asia-northeast1":         {35.68, 139.69, "Tokyo, Japan"},
	"asia-northeast2":         {34.69, 135.50, "Osaka, Japan"},
	"asia-northeast3":         {37.57, 126.98, "Seoul, South Korea"},
	"asia-south1":             {19.08, 72.88, "Mumbai, India"},
	"asia-south2":             {28.61, 77.21, "Delhi, India"},
	"asia-southeast1":         {1.35, 103.82, "Jurong West, Singapore"},
	"asia-southeast2":         {-6.21, 106.85, "Jakarta, Indonesia"},
	"australia-southeast1":    {-33.87, 151.21, "Sydney, Australia"},
	"australia-southeast2":    {-37.81, 144.96, "Melbourne, Australia"},
}

// stripHeight is the band under the map for regions without a known location.
const stripHeight = 64.0

// placement is where each node's marker goes.
type placement struct {
	// Height of the whole picture: the map, and the strip when some region is unknown.
	Height float64
	// Strip is true when the strip is drawn; StripY is its top.
	Strip  bool
	StripY float64
	// Schematic: no region has a known location (a cluster on one machine), so the nodes
	// are drawn on a ring instead of a map.
	Schematic bool
	pos       map[uint64][2]float64
	place     map[string]string
}

// placeNodes puts each node at its region; several nodes of one region go on a small circle
// around it. Nodes of regions without a known location go side by side on a strip under
// the map; when no region is known at all, every node goes on a ring.
func placeNodes(nodes []nodeRegion) placement {
	p := placement{Height: world.Height, pos: map[uint64][2]float64{}, place: map[string]string{}}
	byRegion := map[string][]uint64{}
	var unknown []nodeRegion
	for _, n := range nodes {
		if _, known := regionLocations[n.Region]; known {
			byRegion[n.Region] = append(byRegion[n.Region], n.ID)
		} else {
			unknown = append(unknown, n)
		}
	}
	slices.SortFunc(unknown, func(a, b nodeRegion) int {
		if c := strings.Compare(a.Region, b.Region); c != 0 {
			return c
		}
		return int(a.ID) - int(b.ID)
	})
	switch {
	case len(unknown) > 0 && len(byRegion) == 0:
		p.Schematic = true
		for i, n := range unknown {
			a := -math.Pi/2 + 2*math.Pi*float64(i)/float64(len(unknown))
			p.pos[n.ID] = [2]float64{world.Width/2 + world.Width*0.28*math.Cos(a), world.Height/2 + world.Height*0.3*math.Sin(a)}
		}
	case len(unknown) > 0:
		p.Strip, p.StripY, p.Height = true, world.Height, world.Height+stripHeight
		for i, n := range unknown {
			p.pos[n.ID] = [2]float64{world.Width * (float64(i) + 0.5) / float64(len(unknown)), p.StripY + 22}
		}
	}
	for region, ids := range byRegion {
		slices.Sort(ids)
		loc := regionLocations[region]
		p.place[region] = loc.Place
		cx, cy := world.project(loc.Lat, loc.Lon)
		if len(ids) == 1 {
			p.pos[ids[0]] = [2]float64{cx, cy}
			continue
		}
		r := 9 + 2.5*float64(len(ids))
		for i, id := range ids {
			a := -math.Pi/2 + 2*math.Pi*float64(i)/float64(len(ids))
			p.pos[id] = [2]float64{cx + r*math.Cos(a), cy + r*math.Sin(a)}
		}
	}
	return p
}

type nodeRegion struct {
	ID     uint64
	Region string
}

// linkPath draws the link between two points: a gentle arc, or, when the short way round
// crosses the map's edge (the Pacific), two straight pieces leaving one edge and entering
// the other (only on a map: wrap). It returns the path and the places a label may go, best
// first.
func linkPath(a, b [2]float64, wrap bool) (d string, spots [][2]float64) {
	f := func(v float64) string { return strconv.FormatFloat(math.Round(v*10)/10, 'f', -1, 64) }
	lerp := func(p, q [2]float64, t float64) [2]float64 {
		return [2]float64{p[0] + (q[0]-p[0])*t, p[1] + (q[1]-p[1])*t}
	}
	dx := b[0] - a[0]
	if wrap && math.Abs(dx) > world.Width/2 {
		if a[0] > b[0] {
			a, b = b, a
		}
		// a is west of b: leave a westwards, come back into b from the east.
		shifted := b[0] - world.Width
		t := a[0] / (a[0] - shifted)
		y := a[1] + (b[1]-a[1])*t
		d = fmt.Sprintf("M%s %sL0 %sM%s %sL%s %s", f(a[0]), f(a[1]), f(y), f(world.Width), f(y), f(b[0]), f(b[1]))
		west, east := [2][2]float64{a, {0, y}}, [2][2]float64{{world.Width, y}, b}
		if a[0] < world.Width-b[0] {
			west, east = east, west
		}
		for _, t := range []float64{0.5, 0.3, 0.7} {
			spots = append(spots, lerp(west[0], west[1], t))
		}
		return d, append(spots, lerp(east[0], east[1], 0.5))
	}
	// The control point sits off the middle, on the side towards the pole, like a great
	// circle on this projection.
	mx, my := (a[0]+b[0])/2, (a[1]+b[1])/2
	dy := b[1] - a[1]
	length := math.Hypot(dx, dy)
	if length == 0 {
		return fmt.Sprintf("M%s %s", f(a[0]), f(a[1])), [][2]float64{a}
	}
	nx, ny := -dy/length, dx/length
	if ny > 0 {
		nx, ny = -nx, -ny
	}
	bulge := 0.12 * length
	c := [2]float64{mx + nx*bulge, my + ny*bulge}
	d = fmt.Sprintf("M%s %sQ%s %s %s %s", f(a[0]), f(a[1]), f(c[0]), f(c[1]), f(b[0]), f(b[1]))
	for _, t := range []float64{0.5, 0.35, 0.65, 0.25, 0.75} {
		u := 1 - t
		spots = append(spots, [2]float64{u*u*a[0] + 2*u*t*c[0] + t*t*b[0], u*u*a[1] + 2*u*t*c[1] + t*t*b[1]})
	}
	return d, spots
}

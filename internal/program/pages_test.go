package program

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// programCode returns the size and the resident part (in kB) of this program's code
// mapping, from /proc/self/smaps.
func programCode(t *testing.T) (size, rss int) {
	t.Helper()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 6 && strings.Contains(fields[0], "-") {
			in = fields[1] == "r-xp" && strings.Join(fields[5:], " ") == exe
			continue
		}
		if !in || len(fields) < 2 {
			continue
		}
		n, _ := strconv.Atoi(fields[1])
		switch fields[0] {
		case "Size:":
			size = n
		case "Rss:":
			rss = n
			return size, rss
		}
	}
	t.Fatal("no code mapping of the program in /proc/self/smaps")
	return 0, 0
}

// After Prefault every page of the program's code is mapped: none of it faults in on
// first use any more.
func TestPrefaultMapsAllOfTheCode(t *testing.T) {
	size, before := programCode(t)
	Prefault()
	_, after := programCode(t)
	if after < before {
		t.Fatalf("resident code shrank: %d kB before, %d kB after", before, after)
	}
	if after != size {
		t.Fatalf("after Prefault %d of %d kB of code are mapped (%d before)", after, size, before)
	}
}

package vip

// overlaps reports whether two key sets share a subtree: some key of one is
// equal to, a prefix of, or inside some key of the other.
func overlaps(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if covers(x, y) || covers(y, x) {
				return true
			}
		}
	}
	return false
}

// covers reports whether q is root or lies under root at a dot boundary.
func covers(root, q string) bool {
	if len(q) < len(root) || q[:len(root)] != root {
		return false
	}
	return len(q) == len(root) || q[len(root)] == '.'
}

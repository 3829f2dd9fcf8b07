//go:build !unix

package edge

// OpenFileLimit is unknown here: 0.
func OpenFileLimit() int { return 0 }

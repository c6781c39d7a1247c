package imagebuild

import (
	"context"
	"fmt"
)

// stepPrune removes what a node never uses (prune.go), finishes the tree,
// seeds /etc and checks that no shell, package manager or dangling link is
// left.
func stepPrune(ctx context.Context, b *builder) (string, error) {
	pr, err := prune(b.st, b.v.Root.Remove)
	if err == nil {
		err = b.st.finish()
	}
	if err == nil {
		err = makeEtcSkel(b.st)
	}
	if err == nil {
		err = checkSymlinks(b.st, b.v)
	}
	if err == nil {
		err = assertClean(b.st)
	}
	if err != nil {
		return "", err
	}
	for _, u := range pr.unmatched {
		b.p.logf("note: root.remove pattern %s matched nothing", u)
	}
	b.pruned = pr
	if b.rootFiles, b.rootBytes, err = b.st.size(); err != nil {
		return "", err
	}
	return fmt.Sprintf("removed %d paths (%s, %d dead scripts); root has %d files, %s; no shell, apt, dpkg or perl",
		pr.paths, mb(pr.bytes), len(pr.scripts), b.rootFiles, mb(b.rootBytes)), nil
}

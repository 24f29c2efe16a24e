// composecheck -- loads a Compose file with compose-go, the Compose
// specification's own Go implementation (the loader Docker Compose uses), and
// prints the resolved project as JSON for tests/integration/test_compose.py.
//
//	composecheck [-env-file FILE]... COMPOSE_FILE
//
// Loading validates the file against the Compose JSON schema, interpolates
// variables (from the env files only, not this process's environment, so the
// result does not depend on who runs it), merges YAML anchors, resolves
// relative paths and checks references (networks, volumes, secrets,
// depends_on). On top of that it checks what `docker compose up` would only
// find out at run time: every secret has its content (a set, non-empty
// variable or an existing file), and every bind mount's source exists (Docker
// would otherwise create an empty directory in its place).
// Exit 0 with the JSON on stdout, or 1 with the problems on stderr.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

type envFiles []string

func (e *envFiles) String() string     { return strings.Join(*e, ",") }
func (e *envFiles) Set(v string) error { *e = append(*e, v); return nil }

func main() {
	var files envFiles
	flag.Var(&files, "env-file", "env file for interpolation (repeatable)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: composecheck [-env-file FILE]... COMPOSE_FILE")
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	project, err := load(flag.Arg(0), files)
	if err != nil {
		fmt.Fprintf(os.Stderr, "composecheck: %v\n", err)
		os.Exit(1)
	}
	if problems := runtimeProblems(project); len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(os.Stderr, "composecheck: %s\n", p)
		}
		os.Exit(1)
	}
	out, err := project.MarshalJSON()
	if err != nil {
		fmt.Fprintf(os.Stderr, "composecheck: %v\n", err)
		os.Exit(1)
	}
	os.Stdout.Write(out)
	os.Stdout.Write([]byte("\n"))
}

func load(path string, envFiles []string) (*types.Project, error) {
	opts, err := cli.NewProjectOptions([]string{path},
		cli.WithWorkingDirectory(filepath.Dir(path)),
		cli.WithEnvFiles(envFiles...),
		cli.WithDotEnv,
		cli.WithInterpolation(true),
		cli.WithResolvedPaths(true),
		cli.WithConsistency(true),
	)
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

func runtimeProblems(p *types.Project) []string {
	var problems []string
	names := make([]string, 0, len(p.Secrets))
	for name := range p.Secrets {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		s := p.Secrets[name]
		switch {
		case bool(s.External):
		case s.Environment != "":
			if v, ok := p.Environment[s.Environment]; !ok || v == "" {
				problems = append(problems, fmt.Sprintf("secret %q: variable %s is not set or empty", name, s.Environment))
			}
		case s.File != "":
			if _, err := os.Stat(s.File); err != nil {
				problems = append(problems, fmt.Sprintf("secret %q: %v", name, err))
			}
		}
	}
	for _, svc := range p.Services {
		for _, v := range svc.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				problems = append(problems, fmt.Sprintf("service %q: bind mount source %s does not exist", svc.Name, v.Source))
			}
		}
		if svc.Build != nil {
			df := svc.Build.Dockerfile
			if df != "" && !filepath.IsAbs(df) {
				df = filepath.Join(svc.Build.Context, df)
			}
			if _, err := os.Stat(df); df != "" && err != nil {
				problems = append(problems, fmt.Sprintf("service %q: Dockerfile %v", svc.Name, err))
			}
		}
	}
	sort.Strings(problems)
	return problems
}

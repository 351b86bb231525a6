package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/cellar-cache/cellar/internal/cli"
)

const completionUsage = `cellar completion: print a shell completion script

Usage: cellar completion bash|zsh

  source <(cellar completion bash)          # bash, this shell
  cellar completion zsh > "${fpath[1]}/_cellar"   # zsh, then restart it
`

// completion runs `cellar completion bash|zsh`: it completes the commands,
// the bench modes, the purge kinds, and each command's flags (read from
// its -h).
func completion(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 || cli.IsHelp(args[0]) {
		if len(args) == 1 {
			fmt.Fprint(stdout, completionUsage)
			return flag.ErrHelp
		}
		fmt.Fprint(stderr, completionUsage)
		return errors.New("completion: want a shell: bash or zsh")
	}
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	switch args[0] {
	case "bash":
		fmt.Fprintf(stdout, bashCompletion, strings.Join(names, " "))
	case "zsh":
		fmt.Fprintf(stdout, "#compdef cellar\n"+bashCompletion+"\n", strings.Join(names, " "))
	default:
		return fmt.Errorf("completion: unknown shell %q: want bash or zsh", args[0])
	}
	return nil
}

// bashCompletion serves bash, and zsh through bashcompinit. Flags come
// from the command's own -h, so they never go out of date.
const bashCompletion = `# cellar shell completion (cellar completion bash|zsh)
if [ -n "$ZSH_VERSION" ]; then autoload -U +X bashcompinit && bashcompinit; fi
_cellar() {
	local cur=${COMP_WORDS[COMP_CWORD]} cmd=${COMP_WORDS[1]}
	if [ "$COMP_CWORD" -eq 1 ]; then
		COMPREPLY=($(compgen -W "%s -h --version" -- "$cur"))
		return
	fi
	local sub=$cmd
	case $cmd in
	bench)
		if [ "$COMP_CWORD" -eq 2 ]; then COMPREPLY=($(compgen -W "sim http" -- "$cur")); return; fi
		sub="bench ${COMP_WORDS[2]}" ;;
	purge)
		if [ "$COMP_CWORD" -eq 2 ]; then COMPREPLY=($(compgen -W "url prefix tag all" -- "$cur")); return; fi ;;
	completion)
		COMPREPLY=($(compgen -W "bash zsh" -- "$cur")); return ;;
	esac
	case $cur in
	-*)
		local flags
		flags=$(${COMP_WORDS[0]} $sub -h 2>/dev/null | sed -n 's/^  \(-[a-z0-9-]*\).*/\1/p')
		COMPREPLY=($(compgen -W "$flags" -- "$cur")) ;;
	*)
		COMPREPLY=($(compgen -f -- "$cur")) ;;
	esac
}
complete -F _cellar cellar
`

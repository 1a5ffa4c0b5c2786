// kustomize-worker runs `kustomize build` many times in one process: the kustomize CLI's own build
// command (sigs.k8s.io/kustomize/kustomize/v5, pinned in go.mod to the CLI the project installs), without
// starting a process and loading kustomize's OpenAPI schema for every stack. A `kustomize build` process
// costs about 17 ms of CPU for a ten-object stack, most of it start-up; a build here about 3.7 ms.
//
// Protocol, one build at a time (kustomize keeps its OpenAPI schema and flags in process-wide state, so
// builds in one process never overlap; callers run several workers for parallel builds):
//
//	stdin:  one JSON array per line, the arguments after `kustomize build`
//	stdout: one JSON object per line, {"code": exit code, "stdout": ..., "stderr": ...}: what the CLI
//	        would have printed and returned for those arguments
//
// The YAML is the CLI's, byte for byte, written without its detour through JSON (yamlOf, in yaml.go): a
// quarter of a small stack's build was kustomize turning each object into JSON and back.
//
// The worker ends when its stdin closes, or after a minute without a request.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/kustomize/api/konfig"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kustomize/v5/commands/build"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/kustomize/kyaml/openapi"
)

const idleExit = time.Minute

type answer struct {
	Code   int    `json:"code"`
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
}

// run builds once with a fresh command, made as the CLI makes its `build` subcommand, so every flag
// starts from its default. What kustomize writes to os.Stderr or the log (deprecation warnings) goes to
// `warnings`, before cobra's "Error: ..." line, in the order the CLI prints them. A build that set its
// own OpenAPI schema (a kustomization's `openapi:` field) leaves it in kyaml's process-wide state, where
// the next build would use it: the schema is reset after such a build, so each starts as a new process.
func run(args []string, warnings *os.File, pristine string) (result answer) {
	var stdout, stderr bytes.Buffer
	defer func() {
		if openapi.GetSchemaVersion() != pristine {
			openapi.ResetOpenAPI()
		}
	}()
	defer func() {
		if r := recover(); r != nil { // a kustomize panic fails this build, not the worker
			result = answer{Code: 2, Stderr: fmt.Sprintf("panic: %v\n", r)}
		}
	}()
	warnings.Truncate(0)
	warnings.Seek(0, io.SeekStart)
	realStderr := os.Stderr
	os.Stderr = warnings
	log.SetOutput(warnings)
	defer func() { os.Stderr = realStderr; log.SetOutput(realStderr) }()

	cmd := buildCommand(filesys.MakeFsOnDisk(), &stdout)
	cmd.SetArgs(args)
	cmd.SetOut(&stderr) // cobra's own messages; the build's YAML goes to the writer above
	cmd.SetErr(&stderr)
	if err := cmd.Execute(); err != nil {
		result.Code = 1
	}
	warnings.Seek(0, io.SeekStart)
	printed, _ := io.ReadAll(warnings)
	result.Stdout, result.Stderr = stdout.String(), string(printed)+stderr.String()
	return result
}

// buildCommand is the CLI's `build` command, made as the CLI makes it, whose run writes the YAML with
// yamlOf. With `--output` the CLI's own run writes the files.
func buildCommand(fSys filesys.FileSystem, stdout io.Writer) *cobra.Command {
	cmd := build.NewCmdBuild(fSys, build.MakeHelp(konfig.ProgramName, "build"), stdout)
	build.AddFunctionAlphaEnablementFlags(cmd.Flags())
	toFiles := cmd.RunE
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if output := cmd.Flags().Lookup("output"); output == nil || output.Value.String() != "" {
			return toFiles(cmd, args)
		}
		if err := build.Validate(args); err != nil {
			return err
		}
		path := filesys.SelfDir
		if len(args) == 1 {
			path = args[0]
		}
		kustomizer := krusty.MakeKustomizer(build.HonorKustomizeFlags(krusty.MakeDefaultOptions(), cmd.Flags()))
		built, err := kustomizer.Run(fSys, path)
		if err != nil {
			return err
		}
		text, err := yamlOf(built)
		if err != nil {
			return err
		}
		_, err = stdout.Write(text)
		return err
	}
	return cmd
}

func main() {
	warnings, err := os.CreateTemp("", "kustomize-worker-*.stderr")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Remove(warnings.Name())             // open, unnamed: gone with the process
	pristine := openapi.GetSchemaVersion() // the schema a new process builds with
	idle := time.AfterFunc(idleExit, func() { os.Exit(0) })
	in := bufio.NewReader(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	for {
		line, readErr := in.ReadBytes('\n')
		idle.Stop()
		if len(bytes.TrimSpace(line)) > 0 {
			var args []string
			result := answer{Code: 2, Stderr: "kustomize-worker: a request is one JSON array of strings\n"}
			if json.Unmarshal(line, &args) == nil {
				result = run(args, warnings, pristine)
			}
			if out.Encode(result) != nil {
				os.Exit(1)
			}
		}
		idle.Reset(idleExit)
		if readErr != nil { // stdin closed: the caller is gone
			return
		}
	}
}

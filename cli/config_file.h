/* config_file.h: `--config FILE`, a YAML mapping of options read before the
 * command line, as LLaMA-Factory's and axolotl's run files are.  Each key is
 * an option's name (`learning_rate: 3e-4`, `lora-r: 16`, `bf16: true`); a
 * list becomes a comma-separated value (`target_modules: [q_proj, v_proj]`);
 * null leaves the option at its default.  A flag given on the command line
 * overrides the file's value of the same option. */
#ifndef ROSA_CONFIG_FILE_H
#define ROSA_CONFIG_FILE_H

/* Replaces `--config FILE` (or --config=FILE) in argv[0..argc) by the file's
 * options as `--key=value` arguments, placed before every other argument.
 * Returns 0 (argv unchanged when there is no --config), or -1 after printing
 * a usage error that names the file and line. */
int config_expand(const char *command, int *argc, char ***argv);

/* "run.yaml:3 (key learning_rate)" for an argument that config_expand made,
 * NULL for one typed on the command line. */
const char *config_origin(const char *arg);

#endif

/* test_robustness_faults.c: `rosa train` never loses work (issue 8;
 * docs/robustness.md).  Every test runs the real binary (ROSA_BIN) on the
 * shipped stories260K model and compares what it leaves behind with an
 * uninterrupted run of the same command, byte for byte:
 *   - kill -9 after random delays, again and again, resuming each time;
 *   - kill -9 at every mkdir and rename and at a third of the writes of a run
 *     (strace fault injection: exactly at that system call), then resume;
 *   - a full disk (a small tmpfs) and a file size limit (EFBIG) while
 *     checkpointing;
 *   - SIGINT and SIGTERM, then --resume;
 *   - two concurrent runs into one output directory;
 *   - a non-finite loss, stopped and then resumed.
 * After every interruption each checkpoint-N/ directory present must equal
 * the reference run's checkpoint-N/, and the finished run's adapter and
 * per-step losses must equal the reference's. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/util.h"
#include "io/json.h"
#include "test.h"
#include "train/checkpoint.h"

/* ---------------------------------------------------------------- helpers */

/* A scratch path, in a static buffer (one of 64, rotating: copy what must
 * last).  On a tmpfs when there is one: checkpoints fsync every file, which
 * costs milliseconds on a disk (power loss is not what these tests are
 * about: a killed process leaves everything it wrote in the page cache). */
static char fault_root[64];

static void remove_fault_root(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fault_root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", fault_root);
}

static const char *fpath(const char *name) {
    static char bufs[64][512];
    static int k;
    if (!fault_root[0]) { /* removed at exit: it may be in memory (/dev/shm) */
        snprintf(fault_root, sizeof fault_root, "%s/rosa-faults-XXXXXX", rosa_is_dir("/dev/shm") ? "/dev/shm" : "/tmp");
        if (mkdtemp(fault_root)) atexit(remove_fault_root);
        else snprintf(fault_root, sizeof fault_root, "/tmp");
    }
    const char *root = fault_root;
    char *b = bufs[k++ & 63];
    snprintf(b, 512, "%s/%s", root, name);
    return b;
}

static void rm_rf(const char *path) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", path);
}

/* The data: 24 short records (6 steps per epoch at batch 4). */
static const char *data_file(void) {
    static char path[512];
    if (!path[0]) {
        static const char *words[] = {"cat", "dog", "ball", "tree", "sun", "happy", "red", "big", "park", "mom"};
        snprintf(path, sizeof path, "%s", fpath("data.jsonl"));
        FILE *f = fopen(path, "w");
        for (int i = 0; f && i < 24; i++)
            fprintf(f, "{\"instruction\": \"Is the %s %s?\", \"input\": \"\", \"output\": \"the answer is %s\"}\n",
                    words[i % 10], words[(i * 3 + 1) % 10], i % 3 ? "true" : "false");
        if (f) fclose(f);
    }
    return path;
}

/* The training command: steps, save_steps, modules, output and extra options. */
static void train_cmd(char *cmd, size_t n, int steps, int save, const char *modules, const char *out,
                      const char *extra) {
    snprintf(cmd, n,
             "%s train --model %s --data %s --output %s --max-steps %d --save-steps %d --target-modules %s "
             "--batch-size 4 --micro-batch-size 2 --lr 3e-3 --warmup-steps 2 --cutoff-len 48 --dropout 0.1 "
             "--seed 9 --threads 1 --log-format plain --quiet %s",
             rosa_bin(), shared_path("models/stories260K"), data_file(), out, steps, save, modules, extra ? extra : "");
}

typedef struct {
    rlim_t fsize; /* RLIMIT_FSIZE in bytes (SIGXFSZ ignored: writes fail with EFBIG); 0 = none */
} spawn_opts;

/* Starts `sh -c "exec CMD > LOG 2>&1"`: the pid is the command's. */
static pid_t spawn(const char *cmd, const char *log, const spawn_opts *o) {
    char full[8192];
    snprintf(full, sizeof full, "exec %s > %s 2>&1", cmd, log);
    pid_t pid = fork();
    if (pid == 0) {
        if (o && o->fsize) {
            struct rlimit rl = {o->fsize, o->fsize};
            setrlimit(RLIMIT_FSIZE, &rl);
            signal(SIGXFSZ, SIG_IGN);
        }
        execl("/bin/sh", "sh", "-c", full, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Waits for pid: its exit status, 128 + signal when killed, -1 on timeout
 * (then it is killed). */
static int wait_for(pid_t pid, double timeout) {
    double t0 = rosa_now();
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (r < 0) return -2;
        if (rosa_now() - t0 > timeout) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        usleep(2000);
    }
}

static int run_cmd(const char *cmd, const char *log, const spawn_opts *o, double timeout) {
    return wait_for(spawn(cmd, log, o), timeout);
}

static char *slurp(const char *path) {
    size_t n;
    char *s = rosa_read_file(path, &n);
    return s ? s : rosa_strdup("");
}

static int same_file(const char *a, const char *b) {
    size_t la, lb;
    char *x = rosa_read_file(a, &la), *y = rosa_read_file(b, &lb);
    int same = x && y && la == lb && memcmp(x, y, la) == 0;
    free(x);
    free(y);
    return same;
}

/* "step:loss:grad_norm;" for every step line of metrics.jsonl, in order. */
static char *metrics_signature(const char *out) {
    char p[600];
    snprintf(p, sizeof p, "%s/metrics.jsonl", out);
    char *text = slurp(p);
    rosa_buf sig = {0};
    rosa_buf_append(&sig, "", 0);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *st = cJSON_GetObjectItem(j, "step"), *loss = cJSON_GetObjectItem(j, "loss"),
                    *g = cJSON_GetObjectItem(j, "grad_norm");
        if (cJSON_IsNumber(st) && cJSON_IsNumber(loss)) {
            char e[128];
            int n = snprintf(e, sizeof e, "%.0f:%.9g:%.9g;", st->valuedouble, loss->valuedouble,
                             cJSON_IsNumber(g) ? g->valuedouble : 0.0);
            rosa_buf_append(&sig, e, (size_t)n);
        }
        cJSON_Delete(j);
    }
    free(text);
    return sig.data;
}

static const char *const ckpt_files[] = {"rosa_state.json", "adapter_config.json", "adapter_model.safetensors",
                                         "optimizer.safetensors"};

/* trainer_state.json equal but for save_steps (the runs compared save at
 * different intervals): the same history, steps and best metric. */
static int same_hf_state(const char *a, const char *b) {
    cJSON *x = rosa_json_load(a), *y = rosa_json_load(b);
    cJSON_DeleteItemFromObject(x, "save_steps");
    cJSON_DeleteItemFromObject(y, "save_steps");
    char *p = x ? cJSON_PrintUnformatted(x) : NULL, *q = y ? cJSON_PrintUnformatted(y) : NULL;
    int same = p && q && strcmp(p, q) == 0;
    free(p);
    free(q);
    cJSON_Delete(x);
    cJSON_Delete(y);
    return same;
}

/* Every checkpoint-N/ of out equals ref's checkpoint-N/ file for file, and
 * rosa_checkpoint_latest finds the newest.  Returns the number of checkpoints. */
static int check_checkpoints(const char *out, const char *ref, const char *when) {
    DIR *d = opendir(out);
    if (!d) return 0;
    struct dirent *e;
    int n = 0;
    long long newest = -1;
    while ((e = readdir(d))) {
        long long step;
        char tail;
        if (sscanf(e->d_name, "checkpoint-%lld%c", &step, &tail) != 1) continue;
        n++;
        if (step > newest) newest = step;
        for (size_t i = 0; i < sizeof ckpt_files / sizeof ckpt_files[0]; i++) {
            char a[700], b[700];
            snprintf(a, sizeof a, "%s/%s/%s", out, e->d_name, ckpt_files[i]);
            snprintf(b, sizeof b, "%s/%s/%s", ref, e->d_name, ckpt_files[i]);
            CHECK_MSG(same_file(a, b), "%s: %s differs from the uninterrupted run's (or is missing)", when, a);
        }
        char a[700], b[700];
        snprintf(a, sizeof a, "%s/%s/trainer_state.json", out, e->d_name);
        snprintf(b, sizeof b, "%s/%s/trainer_state.json", ref, e->d_name);
        CHECK_MSG(same_hf_state(a, b), "%s: %s differs from the uninterrupted run's (or is missing)", when, a);
    }
    closedir(d);
    CHECK_MSG(rosa_checkpoint_latest(out, NULL) == newest, "%s: latest checkpoint %lld, expected %lld", when,
              (long long)rosa_checkpoint_latest(out, NULL), newest);
    return n;
}

/* The finished run in out equals the reference: adapter files and the loss of
 * every step (each step once). */
static void check_finished(const char *out, const char *ref, const char *when) {
    static const char *const files[] = {"adapter_config.json", "adapter_model.safetensors"};
    for (int i = 0; i < 2; i++) {
        char a[700], b[700];
        snprintf(a, sizeof a, "%s/%s", out, files[i]);
        snprintf(b, sizeof b, "%s/%s", ref, files[i]);
        CHECK_MSG(same_file(a, b), "%s: the final %s differs from the uninterrupted run's", when, files[i]);
    }
    char *x = metrics_signature(out), *y = metrics_signature(ref);
    CHECK_MSG(strcmp(x, y) == 0, "%s: metrics.jsonl steps differ:\n  got      %s\n  expected %s", when, x, y);
    free(x);
    free(y);
    check_checkpoints(out, ref, when);
}

/* Finishes the run in out the way a user would: --resume when a checkpoint
 * exists, else the same command again.  Returns the exit status. */
static int finish(int steps, int save, const char *modules, const char *out, const char *log) {
    char cmd[4096];
    train_cmd(cmd, sizeof cmd, steps, save, modules, out, rosa_checkpoint_latest(out, NULL) >= 0 ? "--resume" : "");
    return run_cmd(cmd, log, NULL, 300);
}

/* The uninterrupted run (every step checkpointed) of a shape, made once;
 * *seconds: how long it took.  extra: options added (NULL: none). */
static const char *reference_with(int steps, const char *modules, const char *extra, double *seconds) {
    static char dirs[8][512];
    static double secs[8];
    static int n;
    char dir[512];
    snprintf(dir, sizeof dir, "%s-%d-%s%s", fpath("ref"), steps, modules, extra ? "-extra" : "");
    int i = 0;
    while (i < n && strcmp(dirs[i], dir) != 0) i++;
    if (i == n) {
        if (n == 8) return NULL;
        rm_rf(dir);
        char cmd[4096];
        train_cmd(cmd, sizeof cmd, steps, 1, modules, dir, extra);
        double t0 = rosa_now();
        int rc = run_cmd(cmd, fpath("ref.log"), NULL, 300);
        if (rc != 0) {
            char *log = slurp(fpath("ref.log"));
            test_fail(__FILE__, __LINE__, "the reference run failed (%d): %s", rc, log);
            free(log);
            return NULL;
        }
        secs[n] = rosa_now() - t0;
        snprintf(dirs[n++], sizeof dirs[0], "%s", dir);
    }
    if (seconds) *seconds = secs[i];
    return dirs[i];
}

static const char *reference(int steps, const char *modules, double *seconds) {
    return reference_with(steps, modules, NULL, seconds);
}

static uint64_t test_seed(void) {
    const char *s = getenv("ROSA_FAULT_SEED");
    return s && *s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
}

/* --------------------------------------------------------------- kill -9 */

/* kill -9 after a random delay, over and over (until 10 runs were killed
 * while running): each time every checkpoint left is complete and identical
 * to the uninterrupted run's; a run that gets to finish (possibly after
 * several resumes) ends with the same adapter and the same loss at every
 * step.  ROSA_FAULT_SEED=N replays a sequence. */
TEST(faults_kill9_at_random_moments_never_loses_a_checkpoint) {
    const int steps = 12, want_kills = 10, max_rounds = 40;
    double t_ref;
    const char *ref = reference(steps, "all", &t_ref);
    REQUIRE(ref);
    uint64_t seed = test_seed();
    rosa_rng rng;
    rosa_rng_seed(&rng, seed);
    char out[512], log[512];
    snprintf(out, sizeof out, "%s", fpath("kill9"));
    snprintf(log, sizeof log, "%s", fpath("kill9.log"));
    rm_rf(out);
    int kills = 0, finished = 0, max_ckpts = 0;
    for (int round = 0; round < max_rounds && kills < want_kills; round++) {
        char cmd[4096], when[128];
        train_cmd(cmd, sizeof cmd, steps, 1, "all", out, rosa_checkpoint_latest(out, NULL) >= 0 ? "--resume" : "");
        pid_t pid = spawn(cmd, log, NULL);
        double delay = rosa_rng_uniform(&rng) * 1.1 * t_ref;
        usleep((useconds_t)(delay * 1e6));
        kill(pid, SIGKILL);
        int rc = wait_for(pid, 300);
        snprintf(when, sizeof when, "seed %llu, round %d (killed after %.3f s)", (unsigned long long)seed, round, delay);
        if (rc == 128 + SIGKILL) {
            kills++;
            int n = check_checkpoints(out, ref, when);
            if (n > max_ckpts) max_ckpts = n;
        } else {
            char *l = slurp(log);
            CHECK_MSG(rc == 0, "%s: exit %d: %s", when, rc, l);
            free(l);
            check_finished(out, ref, when);
            finished++;
            rm_rf(out); /* and start over */
        }
        if (test_failed()) return;
    }
    /* the last run is finished without interruption */
    CHECK_EQ_INT(finish(steps, 1, "all", out, log), 0);
    check_finished(out, ref, "after the last kill");
    CHECK_MSG(kills >= want_kills, "only %d of %d runs were killed while running (seed %llu)", kills, max_rounds,
              (unsigned long long)seed);
    CHECK_MSG(max_ckpts >= 1, "no kill left a checkpoint to resume from (seed %llu)", (unsigned long long)seed);
}

/* LeakSanitizer cannot run in a traced process (make test-san). */
#define NO_LSAN "ASAN_OPTIONS=detect_leaks=0"

/* strace can stop a process at its N-th call of a system call and kill it
 * there (fault injection), deterministically. */
static int strace_works(void) {
    static int ok = -1;
    if (ok < 0) ok = system("strace -f -qq -o /dev/null -e trace=getpid -e inject=getpid:retval=1 true >/dev/null 2>&1") == 0;
    return ok;
}

/* How many calls of `syscall` a run makes (-1 when it cannot be traced). */
static int count_calls(const char *syscall, int steps, const char *modules, const char *extra_setup_out) {
    const char *out = extra_setup_out ? extra_setup_out : fpath("count");
    if (!extra_setup_out) rm_rf(out);
    char cmd[4096], full[4400];
    train_cmd(cmd, sizeof cmd, steps, 1, modules, out, extra_setup_out ? "--resume" : "");
    snprintf(full, sizeof full, "env %s strace -f -qq -o %s -e trace=%s %s", NO_LSAN, fpath("count.trace"), syscall, cmd);
    if (run_cmd(full, fpath("count.log"), NULL, 300) != 0) return -1;
    char *t = slurp(fpath("count.trace"));
    int n = 0;
    char pat[64];
    snprintf(pat, sizeof pat, " %s(", syscall);
    for (char *p = t; (p = strstr(p, pat)); p++) n++;
    free(t);
    return n;
}

/* Kills a run at the k-th call of `syscall` (at its entry: whatever it was
 * going to do is not done), checks the checkpoints, finishes the run and
 * compares it with the reference. */
static void kill_at(const char *syscall, int k, int steps, const char *modules, const char *out, const char *ref,
                    const char *resume_from) {
    char cmd[4096], full[4600], when[160];
    if (resume_from) {
        rm_rf(out);
        char cp[1200];
        snprintf(cp, sizeof cp, "cp -a %s %s", resume_from, out);
        CHECK(system(cp) == 0);
    } else {
        rm_rf(out);
    }
    train_cmd(cmd, sizeof cmd, steps, 1, modules, out, resume_from ? "--resume" : "");
    snprintf(full, sizeof full, "env %s strace -f -qq -o /dev/null -e trace=%s -e inject=%s:signal=KILL:when=%d %s",
             NO_LSAN, syscall, syscall, k, cmd);
    snprintf(when, sizeof when, "killed at %s #%d%s", syscall, k, resume_from ? " of a resumed run" : "");
    int rc = run_cmd(full, fpath("inject.log"), NULL, 300);
    CHECK_MSG(rc == 128 + SIGKILL, "%s: exit status %d (not killed)", when, rc);
    check_checkpoints(out, ref, when);
    rc = finish(steps, 1, modules, out, fpath("inject-finish.log"));
    if (rc != 0) {
        char *l = slurp(fpath("inject-finish.log"));
        test_fail(__FILE__, __LINE__, "%s: finishing the run failed (%d): %s", when, rc, l);
        free(l);
        return;
    }
    check_finished(out, ref, when);
}

/* Keeps the lines of out/metrics.jsonl up to step `last` (as if the run had
 * been killed after it). */
static void keep_metrics_until(const char *out, int last) {
    char p[600];
    snprintf(p, sizeof p, "%s/metrics.jsonl", out);
    char *text = slurp(p);
    FILE *f = fopen(p, "w");
    for (char *line = strtok(text, "\n"); f && line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *st = cJSON_GetObjectItem(j, "step");
        if (cJSON_IsNumber(st) && st->valuedouble <= last) fprintf(f, "%s\n", line);
        cJSON_Delete(j);
    }
    if (f) fclose(f);
    free(text);
}

/* Every mkdir and rename and every third write of a 2-step run with a
 * checkpoint at each step (and its final adapter), then every third write
 * of a run resumed from checkpoint-1, which first rewrites metrics.jsonl. */
TEST(faults_kill9_at_each_step_of_checkpoint_writing) {
    if (!strace_works()) {
        test_skip("strace cannot trace here (install strace; ptrace must be allowed)");
        return;
    }
    const int steps = 2;
    const char *ref = reference(steps, "q_proj", NULL);
    REQUIRE(ref);
    char out[512];
    snprintf(out, sizeof out, "%s", fpath("inject"));
    static const char *const calls[] = {"mkdir", "rename", "write"};
    int points = 0;
    for (int c = 0; c < 3; c++) {
        int n = count_calls(calls[c], steps, "q_proj", NULL);
        REQUIRE(n > 0);
        int stride = strcmp(calls[c], "write") == 0 ? 3 : 1;
        for (int k = 1; k <= n; k += stride) {
            kill_at(calls[c], k, steps, "q_proj", out, ref, NULL);
            points++;
            if (test_failed()) return;
        }
    }
    /* A resumed run: checkpoint-1 and the metrics line of step 1 only. */
    char base[512], probe[512];
    snprintf(base, sizeof base, "%s", fpath("resume-base"));
    rm_rf(base);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "cp -a %s %s && rm -rf %s/checkpoint-2 %s/adapter_*", ref, base, base, base);
    REQUIRE(system(cmd) == 0);
    keep_metrics_until(base, 1);
    snprintf(probe, sizeof probe, "%s", fpath("resume-probe"));
    rm_rf(probe);
    snprintf(cmd, sizeof cmd, "cp -a %s %s", base, probe);
    REQUIRE(system(cmd) == 0);
    int n = count_calls("write", steps, "q_proj", probe);
    REQUIRE(n > 0);
    for (int k = 1; k <= n; k += 3) {
        kill_at("write", k, steps, "q_proj", out, ref, base);
        points++;
        if (test_failed()) return;
    }
    CHECK(points > 20);
}

/* ------------------------------------------------------------- full disk */

/* A tmpfs that holds two checkpoints, not three: the third fails with a clear
 * error, the first two stay intact; with room again, --resume finishes the
 * run exactly. */
TEST(faults_full_disk_keeps_the_previous_checkpoints) {
    if (geteuid() != 0 || system("command -v mount >/dev/null") != 0) {
        test_skip("mounting a tmpfs needs root (the RLIMIT_FSIZE test covers the error path)");
        return;
    }
    const int steps = 6;
    const char *ref = reference(steps, "all", NULL);
    REQUIRE(ref);
    const char *mnt = fpath("tmpfs"), *out = fpath("tmpfs/run");
    mkdir(mnt, 0755);
    char cmd[4096];
    /* one checkpoint is about 590 KB (all modules, rank 8) */
    snprintf(cmd, sizeof cmd, "mount -t tmpfs -o size=1400k rosa-test %s 2>/dev/null", mnt);
    if (system(cmd) != 0) {
        test_skip("mount -t tmpfs is not permitted here (the RLIMIT_FSIZE test covers the error path)");
        return;
    }
    train_cmd(cmd, sizeof cmd, steps, 1, "all", out, "");
    int rc = run_cmd(cmd, fpath("full.log"), NULL, 300);
    char *log = slurp(fpath("full.log"));
    CHECK_MSG(rc == 1, "exit status %d: %s", rc, log);
    CHECK_MSG(strstr(log, "No space left on device") && strstr(log, "the previous checkpoints are intact"),
              "the error does not say what happened: %s", log);
    free(log);
    int n = check_checkpoints(out, ref, "disk full");
    CHECK_MSG(n == 2, "%d checkpoints on the full disk, expected 2", n);
    snprintf(cmd, sizeof cmd, "ls -a %s | grep -c tmp", out);
    char *o = NULL;
    run_capture(cmd, 0, &o);
    CHECK_MSG(atoi(o) == 0, "temporary files were left behind: %s", o);
    free(o);
    snprintf(cmd, sizeof cmd, "mount -o remount,size=16m %s", mnt);
    CHECK(system(cmd) == 0);
    CHECK_EQ_INT(finish(steps, 1, "all", out, fpath("full-finish.log")), 0);
    check_finished(out, ref, "resumed after the disk was full");
    snprintf(cmd, sizeof cmd, "umount %s", mnt);
    CHECK(system(cmd) == 0);
}

/* RLIMIT_FSIZE (no privileges needed): checkpoint files above the limit fail
 * with EFBIG; the checkpoint before is intact and the run resumes exactly. */
TEST(faults_file_size_limit_keeps_the_previous_checkpoint) {
    if (getenv("ROSA_TSAN")) { /* make test-tsan */
        test_skip("ThreadSanitizer's runtime itself faults under a file size limit");
        return;
    }
    const int steps = 6;
    const char *ref = reference(steps, "all", NULL);
    REQUIRE(ref);
    const char *out = fpath("fsize");
    rm_rf(out);
    char cmd[4096];
    /* checkpoint-3 by a run stopped at step 4 (a NaN injected there) */
    train_cmd(cmd, sizeof cmd, steps, 3, "all", out, "");
    char env_cmd[4200];
    snprintf(env_cmd, sizeof env_cmd, "env ROSA_FAULT=nan-step:4 %s", cmd);
    CHECK_EQ_INT(run_cmd(env_cmd, fpath("fsize0.log"), NULL, 300), 1);
    CHECK_EQ_INT(rosa_checkpoint_latest(out, NULL), 3);
    /* resumed under a 64 KiB file size limit: optimizer.safetensors (370 KB) cannot be written */
    train_cmd(cmd, sizeof cmd, steps, 3, "all", out, "--resume");
    spawn_opts lim = {64 << 10};
    int rc = run_cmd(cmd, fpath("fsize.log"), &lim, 300);
    char *log = slurp(fpath("fsize.log"));
    CHECK_MSG(rc == 1, "exit status %d: %s", rc, log);
    CHECK_MSG(strstr(log, "File too large") && strstr(log, "saving checkpoint-6 (the previous checkpoints are intact)"),
              "the error does not say what happened: %s", log);
    free(log);
    CHECK_EQ_INT(check_checkpoints(out, ref, "file size limit"), 1);
    CHECK_EQ_INT(finish(steps, 3, "all", out, fpath("fsize-finish.log")), 0);
    check_finished(out, ref, "resumed after the file size limit");
}

/* ---------------------------------------------------------------- signals */

/* SIGINT and SIGTERM: the run saves a checkpoint, says how to resume and
 * exits with 130; --resume then gives the uninterrupted run's adapter. */
TEST(faults_sigint_and_sigterm_save_and_resume_exactly) {
    const int steps = 24;
    const char *ref = reference(steps, "all", NULL);
    REQUIRE(ref);
    static const int sigs[] = {SIGINT, SIGTERM};
    for (int i = 0; i < 2; i++) {
        const char *out = fpath(i ? "sigterm" : "sigint"), *log = fpath("sig.log");
        rm_rf(out);
        char cmd[4096], metrics[600];
        train_cmd(cmd, sizeof cmd, steps, 0, "all", out, "");
        snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", out);
        pid_t pid = spawn(cmd, log, NULL);
        /* signal it once 3 steps are done (4 lines with the plan line) */
        double t0 = rosa_now();
        for (;;) {
            char *m = slurp(metrics);
            int lines = 0;
            for (char *p = m; *p; p++) lines += *p == '\n';
            free(m);
            if (lines >= 4 || rosa_now() - t0 > 120) break;
            usleep(1000);
        }
        kill(pid, sigs[i]);
        int rc = wait_for(pid, 300);
        char *l = slurp(log);
        CHECK_MSG(rc == 130, "%s: exit status %d: %s", strsignal(sigs[i]), rc, l);
        CHECK_MSG(strstr(l, "interrupted after step") && strstr(l, "--resume"), "%s: no resume hint: %s",
                  strsignal(sigs[i]), l);
        free(l);
        int64_t at = rosa_checkpoint_latest(out, NULL);
        CHECK_MSG(at >= 3 && at < steps, "%s: checkpoint at step %lld", strsignal(sigs[i]), (long long)at);
        check_checkpoints(out, ref, strsignal(sigs[i]));
        CHECK_EQ_INT(finish(steps, 0, "all", out, log), 0);
        check_finished(out, ref, strsignal(sigs[i]));
    }
}

/* ------------------------------------------------------------ concurrency */

/* While one run holds the output directory (stopped with SIGSTOP, so that it
 * is surely still there), a second is refused whatever its options; once the
 * first is killed (-9), the lock is gone and --resume continues it. */
TEST(faults_two_concurrent_runs_the_second_is_refused) {
    const int steps = 24;
    const char *ref = reference(steps, "all", NULL);
    REQUIRE(ref);
    const char *out = fpath("lock"), *log = fpath("lock-a.log");
    rm_rf(out);
    char cmd[4096], metrics[600];
    train_cmd(cmd, sizeof cmd, steps, 1, "all", out, "");
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", out);
    pid_t a = spawn(cmd, log, NULL);
    double t0 = rosa_now();
    while (!rosa_file_exists(metrics) && rosa_now() - t0 < 120) usleep(1000);
    kill(a, SIGSTOP);
    static const char *const variants[] = {"", "--resume", "--overwrite"};
    for (int i = 0; i < 3; i++) {
        char b[4096];
        train_cmd(b, sizeof b, steps, 1, "all", out, variants[i]);
        int rc = run_cmd(b, fpath("lock-b.log"), NULL, 300);
        char *l = slurp(fpath("lock-b.log"));
        CHECK_MSG(rc == 1 && strstr(l, "another rosa train is writing to this directory"),
                  "second run with \"%s\" while the first runs: exit %d: %s", variants[i], rc, l);
        free(l);
    }
    kill(a, SIGKILL);
    CHECK_EQ_INT(wait_for(a, 300), 128 + SIGKILL);
    check_checkpoints(out, ref, "first run killed");
    CHECK_EQ_INT(finish(steps, 1, "all", out, fpath("lock-c.log")), 0);
    check_finished(out, ref, "resumed after the lock holder was killed");
    /* a finished run is not overwritten by accident */
    train_cmd(cmd, sizeof cmd, steps, 1, "all", out, "");
    int rc = run_cmd(cmd, fpath("lock-d.log"), NULL, 300);
    char *l = slurp(fpath("lock-d.log"));
    CHECK_MSG(rc == 1 && strstr(l, "already holds a training run"), "exit %d: %s", rc, l);
    free(l);
}

/* -------------------------------------------------------- non-finite loss */

/* A NaN at step 4: with the stop policy the run fails naming the step and
 * micro-batch and keeps checkpoint-3, from which --resume (the NaN gone)
 * finishes exactly; with skip, that step is recorded as skipped. */
TEST(faults_non_finite_loss_stops_keeping_a_resumable_checkpoint) {
    const int steps = 6;
    const char *ref = reference(steps, "all", NULL);
    REQUIRE(ref);
    const char *out = fpath("nan");
    rm_rf(out);
    char cmd[4096], env_cmd[4300];
    train_cmd(cmd, sizeof cmd, steps, 1, "all", out, "");
    snprintf(env_cmd, sizeof env_cmd, "env ROSA_FAULT=nan-step:4 %s", cmd);
    int rc = run_cmd(env_cmd, fpath("nan.log"), NULL, 300);
    char *l = slurp(fpath("nan.log"));
    CHECK_MSG(rc == 1 && strstr(l, "non-finite loss at step 4, micro-batch 0"), "exit %d: %s", rc, l);
    free(l);
    CHECK_EQ_INT(rosa_checkpoint_latest(out, NULL), 3);
    check_checkpoints(out, ref, "stopped at a NaN");
    CHECK_EQ_INT(finish(steps, 1, "all", out, fpath("nan-finish.log")), 0);
    check_finished(out, ref, "resumed after a NaN");
    /* skip */
    rm_rf(out);
    train_cmd(cmd, sizeof cmd, steps, 1, "all", out, "--nan-policy skip");
    snprintf(env_cmd, sizeof env_cmd, "env ROSA_FAULT=nan-step:4 %s", cmd);
    CHECK_EQ_INT(run_cmd(env_cmd, fpath("nan-skip.log"), NULL, 300), 0);
    char mp[600];
    snprintf(mp, sizeof mp, "%s/metrics.jsonl", out);
    char *m = slurp(mp);
    CHECK_MSG(strstr(m, "{\"step\": 4, \"skipped\": true}"), "metrics.jsonl: %s", m);
    free(m);
}

/* ------------------------------------------------------------- --overwrite */

/* --overwrite starts over: a second run (other options) into a finished run's
 * directory, stopped at step 2, leaves only its own checkpoints, and --resume
 * continues it, not the old run. */
TEST(faults_overwrite_never_resumes_the_old_run) {
    const int steps = 6;
    const char *old = reference(steps, "all", NULL), *ref = reference_with(steps, "all", "--lr 1e-3", NULL);
    REQUIRE(old && ref);
    const char *out = fpath("overwrite");
    rm_rf(out);
    char cmd[4096], env_cmd[4300];
    snprintf(cmd, sizeof cmd, "cp -a %s %s", old, out);
    REQUIRE(system(cmd) == 0);
    train_cmd(cmd, sizeof cmd, steps, 1, "all", out, "--lr 1e-3 --overwrite");
    snprintf(env_cmd, sizeof env_cmd, "env ROSA_FAULT=nan-step:3 %s", cmd);
    CHECK_EQ_INT(run_cmd(env_cmd, fpath("overwrite.log"), NULL, 300), 1);
    CHECK_EQ_INT(rosa_checkpoint_latest(out, NULL), 2);
    char p[600];
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", out);
    CHECK_MSG(!rosa_file_exists(p), "the old run's adapter is still there");
    check_checkpoints(out, ref, "the new run stopped at step 2");
    train_cmd(cmd, sizeof cmd, steps, 1, "all", out, "--lr 1e-3 --resume");
    CHECK_EQ_INT(run_cmd(cmd, fpath("overwrite-resume.log"), NULL, 300), 0);
    check_finished(out, ref, "resumed after --overwrite");
}

/* src/normbench.c - the command line: verbs over files a user can read.
 * The only place that maps a status to an exit code. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_errno.h>

#include "buildinfo.h"
#include "core/blas.h"
#include "harness/bench.h"
#include "harness/train.h"

static const char *prog = "normbench";

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: normbench VERB [options]\n"
            "\n"
            "verbs:\n"
            "  train [options]    train one model and print per-epoch loss and test accuracy\n"
            "  bench [options]    training throughput of the workloads and a norm micro-benchmark\n"
            "  version            version, git revision and BLAS\n"
            "\n"
            "train options:\n"
            "  --arch mlp|cnn|resnet|dln   (cnn)      --norm none|batch|layer|instance|group|lp (none)\n"
            "  --placement pre|post (pre)  --groups G --batch N (64)  --lr X (0.01)  --momentum X (0.9)\n"
            "  --epochs N (1)  --max-steps N  --seed N (0)  --data fashion-mnist|blobs|dln|mnist|cifar10\n"
            "  --dir DIR  --subset N  --eval-every N  --threads N (1)\n"
            "bench options:\n"
            "  --arch mlp|cnn  --norms none,batch,...  --batches 2,8,32,64,128  --windows N  --steps N\n"
            "  --norm-only | --no-norm-bench\n");
}

static int parse_int_list(const char *s, int *out, int max)
{
    int n = 0;
    char *end;
    while (*s && n < max) {
        long v = strtol(s, &end, 10);
        if (end == s || v <= 0)
            return -1;
        out[n++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return n;
}

static int arch_parse(const char *s, enum nb_arch *a)
{
    for (int i = 0; i < NB_ARCH_COUNT; i++)
        if (strcmp(s, nb_arch_name(i)) == 0) {
            *a = i;
            return 0;
        }
    return -1;
}

static int train_print(void *user, const struct nb_metrics *r)
{
    (void)user;
    printf("step %6ld  epoch %5.2f  lr %.4g  train loss %.4f  train acc %.4f  "
           "test loss %.4f  test acc %.4f  (%.1f s)\n",
           r->step, r->epoch, r->lr, r->train_loss, r->train_acc, r->test_loss, r->test_acc,
           r->time);
    fflush(stdout);
    return 0;
}

static int cmd_train(int argc, char **argv)
{
    struct nb_train_spec spec;
    struct nb_data_opts dopt;
    struct nb_error err;
    nb_error_clear(&err);
    nb_train_spec_default(&spec);
    nb_data_opts_default(&dopt);
    int threads = 1;
    static const struct option opts[] = {
        {"arch", 1, 0, 'a'}, {"norm", 1, 0, 'n'}, {"placement", 1, 0, 'p'},
        {"groups", 1, 0, 'g'}, {"batch", 1, 0, 'b'}, {"lr", 1, 0, 'l'},
        {"momentum", 1, 0, 'm'}, {"epochs", 1, 0, 'e'}, {"max-steps", 1, 0, 'S'},
        {"seed", 1, 0, 's'}, {"data", 1, 0, 'd'}, {"dir", 1, 0, 'D'},
        {"subset", 1, 0, 'u'}, {"eval-every", 1, 0, 'E'}, {"threads", 1, 0, 't'},
        {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'a':
            if (arch_parse(optarg, &spec.model.arch)) {
                fprintf(stderr, "%s: train: unknown --arch '%s' (mlp, cnn, resnet, dln)\n", prog, optarg);
                return 2;
            }
            break;
        case 'n':
            if (nb_norm_type_parse(optarg, &spec.model.norm.type)) {
                fprintf(stderr, "%s: train: unknown --norm '%s'\n", prog, optarg);
                return 2;
            }
            break;
        case 'p':
            if (strcmp(optarg, "pre") && strcmp(optarg, "post")) {
                fprintf(stderr, "%s: train: --placement must be pre or post\n", prog);
                return 2;
            }
            spec.model.placement = strcmp(optarg, "pre") ? NB_PLACE_POST : NB_PLACE_PRE;
            break;
        case 'g': spec.model.norm.groups = (int)strtol(optarg, &end, 10); break;
        case 'b': spec.batch = (int)strtol(optarg, &end, 10); break;
        case 'l': spec.sched.lr = strtod(optarg, &end); break;
        case 'm': spec.sgd.momentum = strtod(optarg, &end); break;
        case 'e': spec.epochs = (int)strtol(optarg, &end, 10); break;
        case 'S': spec.max_steps = strtol(optarg, &end, 10); break;
        case 's': spec.seed = strtoull(optarg, &end, 10); break;
        case 'd': {
            int s = nb_data_source_parse(optarg);
            if (s < 0) {
                fprintf(stderr, "%s: train: unknown --data '%s'\n", prog, optarg);
                return 2;
            }
            dopt.source = s;
            break;
        }
        case 'D': snprintf(dopt.dir, sizeof dopt.dir, "%s", optarg); break;
        case 'u': dopt.train_subset = strtoul(optarg, &end, 10); break;
        case 'E': spec.eval_every = strtol(optarg, &end, 10); break;
        case 't': threads = (int)strtol(optarg, &end, 10); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (end && *end) {
            fprintf(stderr, "%s: train: malformed number '%s'\n", prog, optarg);
            return 2;
        }
    }
    nb_blas_set_threads(threads);
    struct nb_data data;
    int rc = nb_data_prepare(&dopt, spec.seed, &data, &err);
    if (rc) {
        nb_error_print(stderr, prog, &err);
        return 1;
    }
    if (data.notice[0])
        fprintf(stderr, "%s: %s\n", prog, data.notice);
    spec.model.input = data.train.shape;
    if (data.train.classes > 0) {
        spec.model.outputs = data.train.classes;
    } else {
        spec.model.outputs = data.train.tdim;
        spec.model.loss = NB_LOSS_MSE;
    }
    char desc[512];
    fprintf(stderr, "%s: %s; %s norm=%s batch=%d lr=%g momentum=%g seed=%llu blas=%s\n", prog,
            nb_data_describe(&data, desc, sizeof desc), nb_arch_name(spec.model.arch),
            nb_norm_type_name(spec.model.norm.type), spec.batch, spec.sched.lr,
            spec.sgd.momentum, (unsigned long long)spec.seed, nb_blas_name());
    struct nb_train_hooks hooks = {.on_metrics = train_print};
    struct nb_train_result res;
    rc = nb_train(&spec, &data.train, &data.test, &hooks, 0, &res, &err);
    nb_data_free(&data);
    if (rc) {
        nb_error_print(stderr, prog, &err);
        return 1;
    }
    if (res.status == NB_TRAIN_DIVERGED) {
        fprintf(stderr, "%s: training diverged at step %ld\n", prog, res.steps);
        return 1;
    }
    printf("final: steps %ld  test loss %.4f  test accuracy %.4f  (%.1f s, %.0f img/s)\n",
           res.steps, res.last.test_loss, res.last.test_acc, res.seconds,
           res.steps * (double)spec.batch / res.seconds);
    return 0;
}

static int cmd_bench(int argc, char **argv)
{
    struct nb_bench_opts o;
    struct nb_error err;
    nb_bench_opts_default(&o);
    int norm_bench = 1, throughput = 1;
    static const struct option opts[] = {
        {"arch", 1, 0, 'a'}, {"norms", 1, 0, 'n'}, {"batches", 1, 0, 'b'},
        {"windows", 1, 0, 'w'}, {"steps", 1, 0, 's'}, {"norm-only", 0, 0, 'N'},
        {"no-norm-bench", 0, 0, 'T'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            if (arch_parse(optarg, &o.arch) || (o.arch != NB_ARCH_CNN && o.arch != NB_ARCH_MLP)) {
                fprintf(stderr, "%s: bench: --arch must be cnn or mlp\n", prog);
                return 2;
            }
            break;
        case 'n': {
            o.n_norms = 0;
            char buf[256];
            snprintf(buf, sizeof buf, "%s", optarg);
            for (char *tok = strtok(buf, ","); tok && o.n_norms < 8; tok = strtok(NULL, ","))
                if (nb_norm_type_parse(tok, &o.norms[o.n_norms++])) {
                    fprintf(stderr, "%s: bench: unknown norm '%s'\n", prog, tok);
                    return 2;
                }
            break;
        }
        case 'b':
            o.n_batches = parse_int_list(optarg, o.batches, 8);
            if (o.n_batches <= 0) {
                fprintf(stderr, "%s: bench: --batches takes positive integers, e.g. 2,8,32\n", prog);
                return 2;
            }
            break;
        case 'w': o.windows = atoi(optarg); break;
        case 's': o.steps = atoi(optarg); break;
        case 'N': throughput = 0; break;
        case 'T': norm_bench = 0; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (o.windows < 1 || o.steps < 1) {
        fprintf(stderr, "%s: bench: --windows and --steps must be >= 1\n", prog);
        return 2;
    }
    nb_blas_set_threads(1);
    printf("# normbench %s (%s), BLAS %s, 1 thread\n", PACKAGE_VERSION, NB_GIT_REVISION,
           nb_blas_name());
    if (throughput && nb_bench_throughput(stdout, &o, &err)) {
        nb_error_print(stderr, prog, &err);
        return 1;
    }
    if (norm_bench && nb_norm_bench(stdout, 0.3)) {
        fprintf(stderr, "%s: bench: out of memory\n", prog);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    /* Library code reports GSL errors through return values; never abort. */
    gsl_set_error_handler_off();
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *verb = argv[1];
    if (strcmp(verb, "train") == 0)
        return cmd_train(argc - 1, argv + 1);
    if (strcmp(verb, "bench") == 0)
        return cmd_bench(argc - 1, argv + 1);
    if (strcmp(verb, "version") == 0 || strcmp(verb, "--version") == 0) {
        printf("normbench %s (git %s), BLAS %s, %s\n", PACKAGE_VERSION, NB_GIT_REVISION,
               nb_blas_name(), NB_BUILD_CC);
        return 0;
    }
    if (strcmp(verb, "help") == 0 || strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "%s: unknown verb '%s'\n", prog, verb);
    usage(stderr);
    return 2;
}

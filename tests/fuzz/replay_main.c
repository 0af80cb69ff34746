/* Replay driver for the fuzz targets when they are not built with libFuzzer: runs
 * LLVMFuzzerTestOneInput once over an empty input and once over every regular file in the
 * corpus directory given as the only argument. A target signals a broken invariant by
 * aborting, so a crash fails the ctest run by itself; reaching the end means all passed.
 * Each input is copied into a buffer of exactly its size so ASan sees any over-read. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define REPLAY_MAX_INPUT (4 * 1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads path into a new buffer of exactly its size; 0 on success. */
static int read_file(const char *path, uint8_t **out, size_t *out_len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long size;
    int rc = -1;

    if (f == NULL)
        return -1;
    if (fseek(f, 0, SEEK_END) != 0)
        goto out;
    size = ftell(f);
    if (size < 0 || size > REPLAY_MAX_INPUT || fseek(f, 0, SEEK_SET) != 0)
        goto out;
    buf = malloc(size > 0 ? (size_t)size : 1);
    if (buf == NULL || fread(buf, 1, (size_t)size, f) != (size_t)size)
        goto out;
    *out = buf;
    *out_len = (size_t)size;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    fclose(f);
    return rc;
}

static int run_file(const char *dir, const char *name)
{
    char path[4096];
    struct stat st;
    uint8_t *data = NULL;
    size_t len = 0;
    int n = snprintf(path, sizeof(path), "%s/%s", dir, name);

    if (n < 0 || (size_t)n >= sizeof(path) || stat(path, &st) != 0) {
        fprintf(stderr, "fuzz replay: cannot stat %s/%s\n", dir, name);
        return -1;
    }
    if (!S_ISREG(st.st_mode))
        return 0;
    if (read_file(path, &data, &len) != 0) {
        fprintf(stderr, "fuzz replay: cannot read %s\n", path);
        return -1;
    }
    LLVMFuzzerTestOneInput(data, len);
    free(data);
    return 1;
}

int main(int argc, char **argv)
{
    static const uint8_t empty[1];
    DIR *d;
    struct dirent *e;
    unsigned long passed = 0;
    int r = 0;

    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    d = opendir(argv[1]);
    if (d == NULL) {
        fprintf(stderr, "fuzz replay: cannot open %s\n", argv[1]);
        return 1;
    }
    LLVMFuzzerTestOneInput(empty, 0);
    passed++;
    for (e = readdir(d); r >= 0 && e != NULL; e = readdir(d)) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        r = run_file(argv[1], e->d_name);
        if (r > 0)
            passed++;
    }
    closedir(d);
    if (r < 0)
        return 1;
    printf("fuzz replay: %lu inputs passed\n", passed);
    return 0;
}

#include "common/json.h"

#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ty_json_real(char *buf, size_t n, double v) {
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    if (!strpbrk(buf, ".eEni")) /* "inf"/"nan" never get here: jansson refuses them */
        snprintf(buf + strlen(buf), n - strlen(buf), ".0");
}

static void ty_json_string(FILE *f, const char *s, size_t len) {
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        case '\b':
            fputs("\\b", f);
            break;
        case '\f':
            fputs("\\f", f);
            break;
        default:
            if (c < 0x20 || c == 0x7f)
                fprintf(f, "\\u%04x", c);
            else
                fputc(c, f);
        }
    }
    fputc('"', f);
}

static void ty_json_newline(FILE *f, int indent, int depth) {
    if (!indent)
        return;
    fputc('\n', f);
    fprintf(f, "%*s", indent * depth, "");
}

static void ty_json_write(FILE *f, const json_t *j, int indent, int depth) {
    char num[40];
    const char *sep = indent ? ": " : ":";
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *v;
        int first = 1;
        fputc('{', f);
        json_object_foreach((json_t *)j, k, v) {
            fputs(first ? "" : ",", f);
            first = 0;
            ty_json_newline(f, indent, depth + 1);
            ty_json_string(f, k, strlen(k));
            fputs(sep, f);
            ty_json_write(f, v, indent, depth + 1);
        }
        if (!first)
            ty_json_newline(f, indent, depth);
        fputc('}', f);
        break;
    }
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        fputc('[', f);
        for (size_t i = 0; i < n; i++) {
            fputs(i ? "," : "", f);
            ty_json_newline(f, indent, depth + 1);
            ty_json_write(f, json_array_get(j, i), indent, depth + 1);
        }
        if (n)
            ty_json_newline(f, indent, depth);
        fputc(']', f);
        break;
    }
    case JSON_STRING:
        ty_json_string(f, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        fprintf(f, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
        break;
    case JSON_REAL:
        ty_json_real(num, sizeof num, json_real_value(j));
        fputs(num, f);
        break;
    case JSON_TRUE:
        fputs("true", f);
        break;
    case JSON_FALSE:
        fputs("false", f);
        break;
    case JSON_NULL:
        fputs("null", f);
        break;
    }
}

char *ty_json_text(const json_t *j, int indent) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    if (j)
        ty_json_write(f, j, indent, 0);
    else
        fputs("null", f);
    fclose(f);
    return buf;
}

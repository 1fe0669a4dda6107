#include "trainer/onnx.h"

#include "common/err.h"
#include "common/util.h"
#include "onnx_subset.pb-c.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Everything allocated for one export, freed together. */
typedef struct {
    void **p;
    size_t n;
} ty_arena_t;

static void *ty_a(ty_arena_t *a, size_t size) {
    void *p = ty_xcalloc(1, size);
    a->p = ty_xrealloc(a->p, (a->n + 1) * sizeof(void *));
    a->p[a->n++] = p;
    return p;
}

static char *ty_astr(ty_arena_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *ty_astr(ty_arena_t *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = ty_xvasprintf(fmt, ap);
    va_end(ap);
    a->p = ty_xrealloc(a->p, (a->n + 1) * sizeof(void *));
    a->p[a->n++] = s;
    return s;
}

static Onnx__TensorProto *ty_tensor(ty_arena_t *a, const char *name, const float *data, int64_t d0,
                                    int64_t d1) {
    Onnx__TensorProto *t = ty_a(a, sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = (char *)name;
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t->n_dims = d1 ? 2 : 1;
    t->dims = ty_a(a, 2 * sizeof(int64_t));
    t->dims[0] = d0;
    t->dims[1] = d1;
    t->has_raw_data = 1; /* little-endian IEEE floats, as ONNX wants */
    t->raw_data.len = (size_t)(d0 * (d1 ? d1 : 1)) * sizeof(float);
    t->raw_data.data = (uint8_t *)data;
    return t;
}

static Onnx__NodeProto *ty_node(ty_arena_t *a, const char *op, const char *out, int nin, ...) {
    Onnx__NodeProto *n = ty_a(a, sizeof *n);
    onnx__node_proto__init(n);
    n->op_type = (char *)op;
    n->name = ty_astr(a, "%s_%s", op, out);
    n->n_input = (size_t)nin;
    n->input = ty_a(a, (size_t)nin * sizeof(char *));
    va_list ap;
    va_start(ap, nin);
    for (int i = 0; i < nin; i++)
        n->input[i] = va_arg(ap, char *);
    va_end(ap);
    n->n_output = 1;
    n->output = ty_a(a, sizeof(char *));
    n->output[0] = (char *)out;
    return n;
}

static Onnx__AttributeProto *ty_int_attr(ty_arena_t *a, const char *name, int64_t v) {
    Onnx__AttributeProto *at = ty_a(a, sizeof *at);
    onnx__attribute_proto__init(at);
    at->name = (char *)name;
    at->has_type = 1;
    at->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    at->has_i = 1;
    at->i = v;
    return at;
}

/* A float tensor [N, d] value description; N is symbolic. */
static Onnx__ValueInfoProto *ty_value(ty_arena_t *a, const char *name, int64_t d) {
    Onnx__TensorShapeProto__Dimension *n = ty_a(a, sizeof *n), *c = ty_a(a, sizeof *c);
    onnx__tensor_shape_proto__dimension__init(n);
    onnx__tensor_shape_proto__dimension__init(c);
    n->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
    n->dim_param = "N";
    c->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    c->dim_value = d;
    Onnx__TensorShapeProto *shape = ty_a(a, sizeof *shape);
    onnx__tensor_shape_proto__init(shape);
    shape->n_dim = 2;
    shape->dim = ty_a(a, 2 * sizeof(void *));
    shape->dim[0] = n;
    shape->dim[1] = c;
    Onnx__TypeProto__Tensor *tt = ty_a(a, sizeof *tt);
    onnx__type_proto__tensor__init(tt);
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = shape;
    Onnx__TypeProto *type = ty_a(a, sizeof *type);
    onnx__type_proto__init(type);
    type->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    type->tensor_type = tt;
    Onnx__ValueInfoProto *v = ty_a(a, sizeof *v);
    onnx__value_info_proto__init(v);
    v->name = (char *)name;
    v->type = type;
    return v;
}

int ty_onnx_export(const ty_model_t *m, const char *path, char **err) {
    ty_arena_t a = {0};
    uint32_t L = m->nlayers;
    size_t maxn = 4 + 2 * L, nn = 0, nt = 0;
    Onnx__NodeProto **nodes = ty_a(&a, maxn * sizeof(void *));
    Onnx__TensorProto **inits = ty_a(&a, (2 + 2 * L) * sizeof(void *));
    inits[nt++] = ty_tensor(&a, "mean", m->mean, m->dims[0], 0);
    inits[nt++] = ty_tensor(&a, "std", m->std, m->dims[0], 0);
    nodes[nn++] = ty_node(&a, "Sub", "centered", 2, "input", "mean");
    nodes[nn++] = ty_node(&a, "Div", "x0", 2, "centered", "std");
    const char *x = "x0";
    const char *final = m->classify ? "probabilities" : "prediction";
    for (uint32_t l = 0; l < L; l++) {
        size_t off = ty_model_layer_offset(m, l), nw = (size_t)m->dims[l] * m->dims[l + 1];
        char *w = ty_astr(&a, "W%u", l), *b = ty_astr(&a, "b%u", l);
        inits[nt++] = ty_tensor(&a, w, m->params + off, m->dims[l], m->dims[l + 1]);
        inits[nt++] = ty_tensor(&a, b, m->params + off + nw, m->dims[l + 1], 0);
        int last = l + 1 == L;
        char *z = last && !m->classify ? (char *) final : ty_astr(&a, "z%u", l);
        nodes[nn++] = ty_node(&a, "Gemm", z, 3, x, w, b); /* z = x W + b */
        if (!last) {
            char *h = ty_astr(&a, "x%u", l + 1);
            nodes[nn++] = ty_node(&a, "Relu", h, 1, z);
            x = h;
        } else if (m->classify) {
            Onnx__NodeProto *sm = ty_node(&a, "Softmax", final, 1, z);
            sm->n_attribute = 1;
            sm->attribute = ty_a(&a, sizeof(void *));
            sm->attribute[0] = ty_int_attr(&a, "axis", 1);
            nodes[nn++] = sm;
        }
    }
    Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
    g.name = "trainyard";
    g.n_node = nn;
    g.node = nodes;
    g.n_initializer = nt;
    g.initializer = inits;
    Onnx__ValueInfoProto *in = ty_value(&a, "input", m->dims[0]);
    Onnx__ValueInfoProto *out = ty_value(&a, final, m->dims[L]);
    g.n_input = 1;
    g.input = &in;
    g.n_output = 1;
    g.output = &out;
    Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT, *op = &opset;
    opset.domain = "";
    opset.has_version = 1;
    opset.version = 13;
    Onnx__ModelProto mp = ONNX__MODEL_PROTO__INIT;
    mp.has_ir_version = 1;
    mp.ir_version = 7;
    mp.producer_name = "trainyard-train";
    mp.producer_version = "0.1";
    mp.graph = &g;
    mp.n_opset_import = 1;
    mp.opset_import = &op;
    /* class names, for whoever serves the model: a JSON array in metadata */
    Onnx__StringStringEntryProto meta = ONNX__STRING_STRING_ENTRY_PROTO__INIT, *metap = &meta;
    char *names = NULL;
    if (m->class_names) {
        json_t *arr = json_array();
        for (uint32_t k = 0; k < m->nclasses; k++)
            json_array_append_new(arr, json_string(m->class_names[k]));
        names = json_dumps(arr, JSON_COMPACT);
        json_decref(arr);
        meta.key = "class_names";
        meta.value = names;
        mp.n_metadata_props = 1;
        mp.metadata_props = &metap;
    }
    size_t len = onnx__model_proto__get_packed_size(&mp);
    uint8_t *buf = ty_xmalloc(len);
    onnx__model_proto__pack(&mp, buf);
    free(names);
    int rc = ty_write_file_atomic(path, buf, len);
    if (rc != 0) {
        *err = ty_xasprintf("cannot write %s: %s", path, strerror(-rc));
        rc = TY_EIO;
    }
    free(buf);
    for (size_t i = 0; i < a.n; i++)
        free(a.p[i]);
    free(a.p);
    return rc;
}

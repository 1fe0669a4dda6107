/* ONNX export of trainyard-train models (softmax, linear, MLP): input
 * "input" [N, features] -> Sub(mean) -> Div(std) -> Gemm (+ Relu)... ->
 * Softmax (classifiers: output "probabilities") or the last Gemm (regressors:
 * output "prediction").  Opset 13, packed with protobuf-c from
 * proto/onnx_subset.proto. */
#ifndef TY_TRAINER_ONNX_H
#define TY_TRAINER_ONNX_H

#include "trainer/model.h"

int ty_onnx_export(const ty_model_t *m, const char *path, char **err);

#endif

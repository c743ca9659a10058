"""Object-detection and time-series scripts as reference implementations write them, ported by imports.

Detection in pure PyTorch (no torchvision.ops): box IoU / generalized IoU, box encoding and decoding,
grid anchors, a greedy NMS loop, RetinaNet's focal loss on a tiny FPN, a YOLO-v1 loss, ROI Align by
affine_grid + grid_sample, CenterNet's heatmap focal loss and decoding, and VOC / COCO average precision.
Time series: a TCN (causal dilated Conv1d, weight norm), an LSTM seq2seq forecaster (teacher forcing,
autoregressive rollout), a Transformer forecaster (sinusoidal positions, causal mask), N-BEATS, and
RevIN + DLinear with a quantile loss over Tensor.unfold windows.

Same method as test_ported_scripts.py: each script is a function of the library module `T` (torch or
tensor) that runs unchanged on both; the model is built in torch and its state copied into raygrad, both
see the same NumPy data, and losses and final parameters agree to float32 accuracy.
"""
import math

import numpy as np
import pytest

import tensor

from test_ported_scripts import device_of, numpy_state, ported_model, run_both

torch = pytest.importorskip("torch")


# ---- 1. Box utilities: IoU, GIoU, encode / decode, anchors, NMS --------------------------------------

def box_area(boxes):
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(T, boxes1, boxes2):
    area1, area2 = box_area(boxes1), box_area(boxes2)
    lt = T.max(boxes1[:, None, :2], boxes2[:, :2])  # [N, M, 2]
    rb = T.min(boxes1[:, None, 2:], boxes2[:, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[:, :, 0] * wh[:, :, 1]
    union = area1[:, None] + area2 - inter
    return inter / union, union


def generalized_box_iou(T, boxes1, boxes2):
    assert (boxes1[:, 2:] >= boxes1[:, :2]).all()
    assert (boxes2[:, 2:] >= boxes2[:, :2]).all()
    iou, union = box_iou(T, boxes1, boxes2)
    lt = T.min(boxes1[:, None, :2], boxes2[:, :2])
    rb = T.max(boxes1[:, None, 2:], boxes2[:, 2:])
    area = (rb - lt).clamp(min=0).prod(dim=2)
    return iou - (area - union) / area


def box_cxcywh_to_xyxy(T, x):
    x_c, y_c, w, h = x.unbind(-1)
    return T.stack([(x_c - 0.5 * w), (y_c - 0.5 * h), (x_c + 0.5 * w), (y_c + 0.5 * h)], dim=-1)


def encode_boxes(T, reference_boxes, proposals, weights=(10.0, 10.0, 5.0, 5.0)):
    wx, wy, ww, wh = weights
    ex_widths = proposals[:, 2] - proposals[:, 0]
    ex_heights = proposals[:, 3] - proposals[:, 1]
    ex_ctr_x = proposals[:, 0] + 0.5 * ex_widths
    ex_ctr_y = proposals[:, 1] + 0.5 * ex_heights
    gt_widths = reference_boxes[:, 2] - reference_boxes[:, 0]
    gt_heights = reference_boxes[:, 3] - reference_boxes[:, 1]
    gt_ctr_x = reference_boxes[:, 0] + 0.5 * gt_widths
    gt_ctr_y = reference_boxes[:, 1] + 0.5 * gt_heights
    targets_dx = wx * (gt_ctr_x - ex_ctr_x) / ex_widths
    targets_dy = wy * (gt_ctr_y - ex_ctr_y) / ex_heights
    targets_dw = ww * T.log(gt_widths / ex_widths)
    targets_dh = wh * T.log(gt_heights / ex_heights)
    return T.cat((targets_dx[:, None], targets_dy[:, None], targets_dw[:, None], targets_dh[:, None]), dim=1)


def decode_boxes(T, rel_codes, boxes, weights=(10.0, 10.0, 5.0, 5.0), clip=math.log(1000.0 / 16)):
    boxes = boxes.to(rel_codes.dtype)
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    ctr_x = boxes[:, 0] + 0.5 * widths
    ctr_y = boxes[:, 1] + 0.5 * heights
    wx, wy, ww, wh = weights
    dx = rel_codes[:, 0::4] / wx
    dy = rel_codes[:, 1::4] / wy
    dw = rel_codes[:, 2::4] / ww
    dh = rel_codes[:, 3::4] / wh
    dw = T.clamp(dw, max=clip)
    dh = T.clamp(dh, max=clip)
    pred_ctr_x = dx * widths[:, None] + ctr_x[:, None]
    pred_ctr_y = dy * heights[:, None] + ctr_y[:, None]
    pred_w = T.exp(dw) * widths[:, None]
    pred_h = T.exp(dh) * heights[:, None]
    c_to_c_h = T.tensor(0.5, dtype=pred_ctr_y.dtype, device=pred_h.device) * pred_h
    c_to_c_w = T.tensor(0.5, dtype=pred_ctr_x.dtype, device=pred_w.device) * pred_w
    pred_boxes1 = pred_ctr_x - c_to_c_w
    pred_boxes2 = pred_ctr_y - c_to_c_h
    pred_boxes3 = pred_ctr_x + c_to_c_w
    pred_boxes4 = pred_ctr_y + c_to_c_h
    return T.stack((pred_boxes1, pred_boxes2, pred_boxes3, pred_boxes4), dim=2).flatten(1)


def grid_anchors(T, feat_h, feat_w, stride, sizes, ratios, device):
    scales = T.as_tensor(sizes, dtype=T.float32, device=device)
    aspect_ratios = T.as_tensor(ratios, dtype=T.float32, device=device)
    h_ratios = T.sqrt(aspect_ratios)
    w_ratios = 1 / h_ratios
    ws = (w_ratios[:, None] * scales[None, :]).view(-1)
    hs = (h_ratios[:, None] * scales[None, :]).view(-1)
    base_anchors = (T.stack([-ws, -hs, ws, hs], dim=1) / 2).round()
    shifts_x = T.arange(0, feat_w, dtype=T.int32, device=device) * stride
    shifts_y = T.arange(0, feat_h, dtype=T.int32, device=device) * stride
    shift_y, shift_x = T.meshgrid(shifts_y, shifts_x, indexing="ij")
    shift_x, shift_y = shift_x.reshape(-1), shift_y.reshape(-1)
    shifts = T.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
    return (shifts.view(-1, 1, 4) + base_anchors.view(1, -1, 4)).reshape(-1, 4)


def nms(T, boxes, scores, iou_threshold):
    """Greedy NMS as the classic pure-PyTorch loop writes it; returns kept indices, best first."""
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    order = scores.argsort(descending=True)
    keep = []
    while order.numel() > 0:
        if order.numel() == 1:
            keep.append(order.item())
            break
        i = order[0].item()
        keep.append(i)
        xx1 = x1[order[1:]].clamp(min=x1[i])
        yy1 = y1[order[1:]].clamp(min=y1[i])
        xx2 = x2[order[1:]].clamp(max=x2[i])
        yy2 = y2[order[1:]].clamp(max=y2[i])
        inter = (xx2 - xx1).clamp(min=0) * (yy2 - yy1).clamp(min=0)
        iou = inter / (areas[i] + areas[order[1:]] - inter)
        idx = (iou <= iou_threshold).nonzero().squeeze()
        if idx.numel() == 0:
            break
        order = order[idx + 1]
    return T.tensor(keep, dtype=T.long, device=boxes.device)


def batched_nms(T, boxes, scores, idxs, iou_threshold):
    """Per-class NMS by the coordinate trick: offset each class's boxes so classes never overlap."""
    if boxes.numel() == 0:
        return T.empty((0,), dtype=T.int64, device=boxes.device)
    max_coordinate = boxes.max()
    offsets = idxs.to(boxes) * (max_coordinate + T.tensor(1).to(boxes))
    return nms(T, boxes + offsets[:, None], scores, iou_threshold)


def box_script(T, device, boxes1, boxes2, codes, scores, classes):
    device = device_of(T, device)
    b1 = T.tensor(boxes1, device=device, requires_grad=True)
    b2 = T.from_numpy(boxes2).to(device)
    iou, _ = box_iou(T, b1, b2)
    giou = generalized_box_iou(T, b1, b2)
    loss = (1 - T.diag(giou)).mean() + (1 - iou.max(dim=1).values).sum()
    loss.backward()
    anchors = grid_anchors(T, 3, 4, 8, (16, 32), (0.5, 1.0, 2.0), device)
    assert anchors.dtype == T.float32 and anchors.shape == (3 * 4 * 6, 4)
    rel = encode_boxes(T, anchors[5:] + 1.5, anchors[:-5])
    decoded = decode_boxes(T, rel, anchors[:-5])
    decoded2 = decode_boxes(T, T.tensor(codes, device=device), anchors[:len(codes)])
    cxcywh = box_cxcywh_to_xyxy(T, T.tensor(boxes1, device=device))
    s = T.tensor(scores, device=device)
    keep = nms(T, T.tensor(boxes2, device=device), s, 0.3)
    keep_cls = batched_nms(T, T.tensor(boxes2, device=device), s, T.tensor(classes, device=device), 0.3)
    out = [iou, giou, b1.grad, anchors, rel, decoded, decoded2, cxcywh, keep.float(), keep_cls.float()]
    return [v.detach().cpu().numpy().ravel() for v in out], {}


def random_boxes(rng, n, size=20.0):
    xy = rng.uniform(0, size, (n, 2))
    wh = rng.uniform(1, size / 2, (n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


def test_box_iou_giou_coder_anchors_nms(device):
    rng = np.random.default_rng(0)
    boxes1, boxes2 = random_boxes(rng, 5), random_boxes(rng, 12)
    codes = rng.normal(0, 1, (6, 8)).astype(np.float32)
    codes[0, 2] = 10.0  # dw past the clip
    scores = rng.permutation(12).astype(np.float32) / 12
    classes = rng.integers(0, 3, 12)
    want, _ = box_script(torch, "cpu", boxes1, boxes2, codes, scores, classes)
    got, _ = box_script(tensor, device, boxes1, boxes2, codes, scores, classes)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


# ---- 2. A tiny RetinaNet: FPN (lateral 1x1 + nearest upsampling), anchor matching, focal + box loss ----

def sigmoid_focal_loss(T, inputs, targets, alpha=0.25, gamma=2.0, reduction="none"):
    p = T.sigmoid(inputs)
    ce_loss = T.nn.functional.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    if reduction == "mean":
        loss = loss.mean()
    elif reduction == "sum":
        loss = loss.sum()
    return loss


def retinanet(T, num_anchors=3, num_classes=2, ch=4):
    nn, F = T.nn, T.nn.functional

    class FPN(nn.Module):
        def __init__(self, in_channels_list, out_channels):
            super().__init__()
            self.inner_blocks = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels_list)
            self.layer_blocks = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1)
                                              for _ in in_channels_list)

        def forward(self, xs):
            last_inner = self.inner_blocks[-1](xs[-1])
            results = [self.layer_blocks[-1](last_inner)]
            for idx in range(len(xs) - 2, -1, -1):
                inner_lateral = self.inner_blocks[idx](xs[idx])
                inner_top_down = F.interpolate(last_inner, scale_factor=2, mode="nearest")
                last_inner = inner_lateral + inner_top_down
                results.insert(0, self.layer_blocks[idx](last_inner))
            return results

    class Head(nn.Module):
        def __init__(self, out_per_anchor):
            super().__init__()
            self.conv = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.GroupNorm(2, ch), nn.ReLU())
            self.out = nn.Conv2d(ch, num_anchors * out_per_anchor, 3, padding=1)
            self.k = out_per_anchor

        def forward(self, features):
            all_outputs = []
            for x in features:
                x = self.out(self.conv(x))
                N, _, H, W = x.shape
                x = x.view(N, -1, self.k, H, W).permute(0, 3, 4, 1, 2).reshape(N, -1, self.k)
                all_outputs.append(x)
            return T.cat(all_outputs, dim=1)

    class RetinaNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.c3 = nn.Sequential(nn.Conv2d(3, ch, 3, stride=2, padding=1), nn.ReLU())
            self.c4 = nn.Sequential(nn.Conv2d(ch, 2 * ch, 3, stride=2, padding=1), nn.ReLU())
            self.fpn = FPN([ch, 2 * ch], ch)
            self.cls_head, self.box_head = Head(num_classes), Head(4)
            with T.no_grad():
                prior = 0.01
                self.cls_head.out.bias.fill_(-math.log((1 - prior) / prior))

        def forward(self, images):
            c3 = self.c3(images)
            c4 = self.c4(c3)
            features = self.fpn([c3, c4])
            return self.cls_head(features), self.box_head(features)

    return RetinaNet()


def retina_anchors(T, device):
    return T.cat([grid_anchors(T, 8, 8, 2, (4,), (0.5, 1.0, 2.0), device),
                  grid_anchors(T, 4, 4, 4, (8,), (0.5, 1.0, 2.0), device)])


def retinanet_loss(T, cls_logits, box_regression, anchors, gt_boxes, gt_labels, fg_iou=0.5, bg_iou=0.4):
    F = T.nn.functional
    cls_losses, box_losses = [], []
    for logits, regression, boxes, labels in zip(cls_logits, box_regression, gt_boxes, gt_labels):
        match_quality, _ = box_iou(T, boxes, anchors)  # [G, A]
        matched_vals, matches = match_quality.max(dim=0)
        foreground = matched_vals >= fg_iou
        valid = (matched_vals >= fg_iou) | (matched_vals < bg_iou)
        num_foreground = foreground.sum()
        gt_classes_target = T.zeros_like(logits)
        gt_classes_target[foreground, labels[matches[foreground]]] = 1.0
        cls_losses.append(sigmoid_focal_loss(T, logits[valid], gt_classes_target[valid], reduction="sum")
                          / max(1, num_foreground.item()))
        target_regression = encode_boxes(T, boxes[matches[foreground]], anchors[foreground])
        box_losses.append(F.smooth_l1_loss(regression[foreground], target_regression, beta=1 / 9,
                                           reduction="sum") / max(1, num_foreground))
    return sum(cls_losses) / len(cls_losses), sum(box_losses) / len(box_losses)


def train_retinanet(T, device, init, images, gt_boxes, gt_labels, steps=3):
    device = device_of(T, device)
    model = ported_model(T, retinanet, init, device)
    anchors = retina_anchors(T, device)
    boxes = [T.tensor(b, device=device) for b in gt_boxes]
    labels = [T.tensor(c, device=device) for c in gt_labels]
    opt = T.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    sched = T.optim.lr_scheduler.MultiStepLR(opt, milestones=[2], gamma=0.1)
    losses = []
    x = T.tensor(images, device=device)
    for _ in range(steps):
        cls_logits, box_regression = model(x)
        cls_loss, box_loss = retinanet_loss(T, cls_logits, box_regression, anchors, boxes, labels)
        loss = cls_loss + box_loss
        opt.zero_grad()
        loss.backward()
        T.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        sched.step()
        losses += [cls_loss.item(), box_loss.item()]
    model.eval()
    with T.no_grad():
        cls_logits, box_regression = model(x)
        scores = T.sigmoid(cls_logits[0]).flatten()
        top = scores.topk(10)
        anchor_idx = T.div(top.indices, cls_logits.shape[-1], rounding_mode="floor")
        decoded = decode_boxes(T, box_regression[0][anchor_idx], anchors[anchor_idx])
        losses += top.values.tolist() + decoded.flatten().tolist()
    return losses, numpy_state(model)


def test_retinanet_fpn_focal_loss(device):
    rng = np.random.default_rng(1)
    anchors = retina_anchors(torch, "cpu").numpy()
    gt_boxes, gt_labels = [], []
    for _ in range(2):
        picks = rng.choice(len(anchors), 3, replace=False)
        gt_boxes.append((anchors[picks] + rng.uniform(-0.3, 0.3, (3, 4))).astype(np.float32))
        gt_labels.append(rng.integers(0, 2, 3))
    images = rng.standard_normal((2, 3, 16, 16)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_retinanet, device, numpy_state(retinanet(torch)), images, gt_boxes, gt_labels)


# ---- 3. YOLO-v1 loss: best-box selection by IoU, in-place sqrt of wh, objectness masks ---------------

def intersection_over_union(T, boxes_preds, boxes_labels):
    """Midpoint-format IoU, as the YOLO-from-scratch tutorials write it."""
    box1_x1 = boxes_preds[..., 0:1] - boxes_preds[..., 2:3] / 2
    box1_y1 = boxes_preds[..., 1:2] - boxes_preds[..., 3:4] / 2
    box1_x2 = boxes_preds[..., 0:1] + boxes_preds[..., 2:3] / 2
    box1_y2 = boxes_preds[..., 1:2] + boxes_preds[..., 3:4] / 2
    box2_x1 = boxes_labels[..., 0:1] - boxes_labels[..., 2:3] / 2
    box2_y1 = boxes_labels[..., 1:2] - boxes_labels[..., 3:4] / 2
    box2_x2 = boxes_labels[..., 0:1] + boxes_labels[..., 2:3] / 2
    box2_y2 = boxes_labels[..., 1:2] + boxes_labels[..., 3:4] / 2
    x1, y1 = T.max(box1_x1, box2_x1), T.max(box1_y1, box2_y1)
    x2, y2 = T.min(box1_x2, box2_x2), T.min(box1_y2, box2_y2)
    intersection = (x2 - x1).clamp(0) * (y2 - y1).clamp(0)
    box1_area = abs((box1_x2 - box1_x1) * (box1_y2 - box1_y1))
    box2_area = abs((box2_x2 - box2_x1) * (box2_y2 - box2_y1))
    return intersection / (box1_area + box2_area - intersection + 1e-6)


def yolo_loss_module(T, S=3, B=2, C=3):
    nn = T.nn

    class YoloLoss(nn.Module):
        def __init__(self):
            super().__init__()
            self.mse = nn.MSELoss(reduction="sum")
            self.lambda_noobj, self.lambda_coord = 0.5, 5

        def forward(self, predictions, target):
            predictions = predictions.reshape(-1, S, S, C + B * 5)
            iou_b1 = intersection_over_union(T, predictions[..., C + 1:C + 5], target[..., C + 1:C + 5])
            iou_b2 = intersection_over_union(T, predictions[..., C + 6:C + 10], target[..., C + 1:C + 5])
            ious = T.cat([iou_b1.unsqueeze(0), iou_b2.unsqueeze(0)], dim=0)
            iou_maxes, bestbox = T.max(ious, dim=0)
            exists_box = target[..., C].unsqueeze(3)
            box_predictions = exists_box * (bestbox * predictions[..., C + 6:C + 10]
                                            + (1 - bestbox) * predictions[..., C + 1:C + 5])
            box_targets = exists_box * target[..., C + 1:C + 5]
            box_predictions[..., 2:4] = T.sign(box_predictions[..., 2:4]) * T.sqrt(
                T.abs(box_predictions[..., 2:4] + 1e-6))
            box_targets[..., 2:4] = T.sqrt(box_targets[..., 2:4])
            box_loss = self.mse(T.flatten(box_predictions, end_dim=-2), T.flatten(box_targets, end_dim=-2))
            pred_box = bestbox * predictions[..., C + 5:C + 6] + (1 - bestbox) * predictions[..., C:C + 1]
            object_loss = self.mse(T.flatten(exists_box * pred_box), T.flatten(exists_box * target[..., C:C + 1]))
            no_object_loss = self.mse(T.flatten((1 - exists_box) * predictions[..., C:C + 1], start_dim=1),
                                      T.flatten((1 - exists_box) * target[..., C:C + 1], start_dim=1))
            no_object_loss += self.mse(T.flatten((1 - exists_box) * predictions[..., C + 5:C + 6], start_dim=1),
                                       T.flatten((1 - exists_box) * target[..., C:C + 1], start_dim=1))
            class_loss = self.mse(T.flatten(exists_box * predictions[..., :C], end_dim=-2),
                                  T.flatten(exists_box * target[..., :C], end_dim=-2))
            # YOLOv3-style objectness terms on the same grid: masks, where, masked_select
            obj_mask, noobj_mask = target[..., C] == 1, target[..., C] == 0
            conf = predictions[..., C]
            obj_conf = T.where(obj_mask, conf, T.zeros_like(conf))
            bce = nn.functional.binary_cross_entropy_with_logits
            obj_bce = bce(conf[obj_mask], target[..., C][obj_mask]) + 0.1 * obj_conf.pow(2).mean()
            noobj_bce = bce(T.masked_select(conf, noobj_mask), T.zeros(int(noobj_mask.sum()), device=conf.device))
            return (self.lambda_coord * box_loss + object_loss + self.lambda_noobj * no_object_loss + class_loss
                    + obj_bce + noobj_bce)

    return YoloLoss()


def yolo_net(T, S=3, B=2, C=3):
    nn = T.nn
    return nn.Sequential(nn.Conv2d(3, 6, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(6), nn.LeakyReLU(0.1),
                         nn.AdaptiveAvgPool2d((S, S)), nn.Flatten(), nn.Dropout(0.0), nn.Linear(6 * S * S, 16),
                         nn.LeakyReLU(0.1), nn.Linear(16, S * S * (C + B * 5)))


def train_yolo(T, device, init, images, targets, steps=3):
    device = device_of(T, device)
    model = ported_model(T, yolo_net, init, device)
    loss_fn = yolo_loss_module(T)
    opt = T.optim.Adam(model.parameters(), lr=2e-3, weight_decay=0)
    losses = []
    for _ in range(steps):
        x, y = T.tensor(images).to(device), T.tensor(targets).to(device)
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, numpy_state(model)


def test_yolo_v1_loss(device):
    rng = np.random.default_rng(2)
    S, B, C = 3, 2, 3
    targets = np.zeros((2, S, S, C + B * 5), np.float32)
    cells = rng.random((2, S, S)) < 0.4
    targets[..., C] = cells
    targets[..., C + 1:C + 3] = rng.uniform(0, 1, (2, S, S, 2)) * cells[..., None]
    targets[..., C + 3:C + 5] = rng.uniform(0.1, 1, (2, S, S, 2)) * cells[..., None]
    targets[..., :C] = np.eye(C)[rng.integers(0, C, (2, S, S))] * cells[..., None]
    images = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_yolo, device, numpy_state(yolo_net(torch)), images, targets)


# ---- 4. ROI Align by affine_grid + grid_sample, a two-stage box classifier ---------------------------

def roi_align(T, features, rois, output_size, spatial_scale):
    """rois: (K, 5) rows of (batch index, x1, y1, x2, y2) in image pixels."""
    F = T.nn.functional
    N, C, H, W = features.shape
    K = rois.shape[0]
    batch_idx = rois[:, 0].long()
    x1, y1, x2, y2 = (rois[:, 1:] * spatial_scale).unbind(1)
    theta = rois.new_zeros(K, 2, 3)
    theta[:, 0, 0] = (x2 - x1) / (W - 1)
    theta[:, 0, 2] = (x1 + x2) / (W - 1) - 1
    theta[:, 1, 1] = (y2 - y1) / (H - 1)
    theta[:, 1, 2] = (y1 + y2) / (H - 1) - 1
    grid = F.affine_grid(theta, (K, C, output_size, output_size), align_corners=True)
    return F.grid_sample(features[batch_idx], grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def two_stage(T, classes=3):
    nn = T.nn

    class RoIHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
            self.roi_offset = nn.Parameter(T.zeros(4))  # a learnt shift of every proposal: grads reach theta
            self.fc = nn.Sequential(nn.Flatten(), nn.Linear(4 * 3 * 3, 16), nn.ReLU())
            self.cls_score, self.bbox_pred = nn.Linear(16, classes), nn.Linear(16, 4 * classes)

        def forward(self, images, proposals):
            feats = self.backbone(images)
            rois = T.cat([proposals[:, :1], proposals[:, 1:] + self.roi_offset], dim=1)
            x = self.fc(roi_align(T, feats, rois, 3, 0.5))
            return self.cls_score(x), self.bbox_pred(x)

    return RoIHead()


def train_two_stage(T, device, init, images, proposals, labels, reg_targets, steps=3):
    device = device_of(T, device)
    F = T.nn.functional
    model = ported_model(T, two_stage, init, device)
    opt = T.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, p = T.tensor(images, device=device), T.tensor(proposals, device=device)
    y, t = T.tensor(labels, device=device), T.tensor(reg_targets, device=device)
    losses = []
    for _ in range(steps):
        class_logits, box_regression = model(x, p)
        classification_loss = F.cross_entropy(class_logits, y)
        pos = T.where(y > 0)[0]
        box_regression = box_regression.reshape(len(y), box_regression.size(-1) // 4, 4)
        box_loss = F.smooth_l1_loss(box_regression[pos, y[pos]], t[pos], beta=1 / 9, reduction="sum") / y.numel()
        loss = classification_loss + box_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses += [classification_loss.item(), box_loss.item()]
    return losses, numpy_state(model)


def test_roi_align_by_grid_sample(device):
    rng = np.random.default_rng(3)
    images = rng.standard_normal((2, 3, 12, 12)).astype(np.float32)
    boxes = random_boxes(rng, 6, size=8.0)
    proposals = np.concatenate([rng.integers(0, 2, (6, 1)), boxes], axis=1).astype(np.float32)
    labels = np.array([0, 1, 2, 1, 0, 2])
    reg_targets = rng.normal(0, 0.5, (6, 4)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_two_stage, device, numpy_state(two_stage(torch)), images, proposals, labels, reg_targets)


# ---- 5. CenterNet: heatmap focal loss, gathered regression, max-pool NMS and top-K decoding ---------

def _sigmoid(T, x):
    return T.clamp(x.sigmoid_(), min=1e-4, max=1 - 1e-4)


def _neg_loss(T, pred, gt):
    """CornerNet's focal loss on a Gaussian heatmap (pred and gt: (batch, c, h, w))."""
    pos_inds = gt.eq(1).float()
    neg_inds = gt.lt(1).float()
    neg_weights = T.pow(1 - gt, 4)
    loss = 0
    pos_loss = T.log(pred) * T.pow(1 - pred, 2) * pos_inds
    neg_loss = T.log(1 - pred) * T.pow(pred, 2) * neg_weights * neg_inds
    num_pos = pos_inds.float().sum()
    pos_loss = pos_loss.sum()
    neg_loss = neg_loss.sum()
    if num_pos == 0:
        loss = loss - neg_loss
    else:
        loss = loss - (pos_loss + neg_loss) / num_pos
    return loss


def _gather_feat(feat, ind, mask=None):
    dim = feat.size(2)
    ind = ind.unsqueeze(2).expand(ind.size(0), ind.size(1), dim)
    feat = feat.gather(1, ind)
    if mask is not None:
        mask = mask.unsqueeze(2).expand_as(feat)
        feat = feat[mask]
        feat = feat.view(-1, dim)
    return feat


def _transpose_and_gather_feat(feat, ind):
    feat = feat.permute(0, 2, 3, 1).contiguous()
    feat = feat.view(feat.size(0), -1, feat.size(3))
    return _gather_feat(feat, ind)


def reg_l1_loss(T, output, mask, ind, target):
    pred = _transpose_and_gather_feat(output, ind)
    mask = mask.unsqueeze(2).expand_as(pred).float()
    loss = T.nn.functional.l1_loss(pred * mask, target * mask, reduction="sum")
    return loss / (mask.sum() + 1e-4)


def _nms_heat(T, heat, kernel=3):
    pad = (kernel - 1) // 2
    hmax = T.nn.functional.max_pool2d(heat, (kernel, kernel), stride=1, padding=pad)
    keep = (hmax == heat).float()
    return heat * keep


def _topk(T, scores, K=5):
    batch, cat, height, width = scores.size()
    topk_scores, topk_inds = T.topk(scores.view(batch, cat, -1), K)
    topk_inds = topk_inds % (height * width)
    topk_ys = (topk_inds / width).int().float()
    topk_xs = (topk_inds % width).int().float()
    topk_score, topk_ind = T.topk(topk_scores.view(batch, -1), K)
    topk_clses = (topk_ind / K).int()
    topk_inds = _gather_feat(topk_inds.view(batch, -1, 1), topk_ind).view(batch, K)
    topk_ys = _gather_feat(topk_ys.view(batch, -1, 1), topk_ind).view(batch, K)
    topk_xs = _gather_feat(topk_xs.view(batch, -1, 1), topk_ind).view(batch, K)
    return topk_score, topk_inds, topk_clses, topk_ys, topk_xs


def draw_heatmaps(T, centers, classes, num_classes, size, sigma=1.0, device="cpu"):
    batch = len(centers)
    hm = T.zeros(batch, num_classes, size, size, device=device)
    ys = T.arange(size, dtype=T.float32, device=device).view(-1, 1)
    xs = T.arange(size, dtype=T.float32, device=device).view(1, -1)
    for b in range(batch):
        for (cx, cy), c in zip(centers[b], classes[b]):
            g = T.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma * sigma))
            hm[b, c] = T.max(hm[b, c], g)
    return hm


def centernet(T, num_classes=2):
    nn = T.nn

    class CenterNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.base = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
            self.hm = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, num_classes, 1))
            self.wh = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 2, 1))
            with T.no_grad():  # README: `.data` is the raw array, so `bias.data.fill_(-2.19)` is spelled so
                self.hm[-1].bias.fill_(-2.19)

        def forward(self, x):
            z = self.base(x)
            return {"hm": self.hm(z), "wh": self.wh(z)}

    return CenterNet()


def train_centernet(T, device, init, images, centers, classes, sizes, steps=3):
    device = device_of(T, device)
    model = ported_model(T, centernet, init, device)
    opt = T.optim.Adam(model.parameters(), lr=5e-3)
    size = images.shape[-1]
    hm = draw_heatmaps(T, centers, classes, 2, size, device=device)
    ind = T.tensor([[int(cy) * size + int(cx) for cx, cy in c] for c in centers], device=device)
    mask = T.ones(ind.shape, dtype=T.uint8, device=device)
    mask[1, -1] = 0  # the second image has one object fewer
    wh = T.tensor(sizes, device=device)
    x = T.tensor(images, device=device)
    losses = []
    for _ in range(steps):
        output = model(x)
        hm_pred = _sigmoid(T, output["hm"])
        hm_loss = _neg_loss(T, hm_pred, hm)
        wh_loss = reg_l1_loss(T, output["wh"], mask, ind, wh)
        loss = hm_loss + 0.1 * wh_loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses += [hm_loss.item(), wh_loss.item()]
    with T.no_grad():
        heat = _nms_heat(T, _sigmoid(T, model(x)["hm"]))
        for v in _topk(T, heat):
            losses += v.float().flatten().tolist()
    return losses, numpy_state(model)


def test_centernet_heatmap_focal_loss(device):
    rng = np.random.default_rng(4)
    size = 8
    centers = [[(int(cx), int(cy)) for cx, cy in rng.integers(1, size - 1, (3, 2))] for _ in range(2)]
    classes = rng.integers(0, 2, (2, 3)).tolist()
    sizes = rng.uniform(1, 4, (2, 3, 2)).astype(np.float32)
    images = rng.standard_normal((2, 3, size, size)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_centernet, device, numpy_state(centernet(torch)), images, centers, classes, sizes)


# ---- 6. Mean average precision: greedy matching, cumsum over sorted TPs, VOC and COCO interpolation ---

def average_precision(T, boxes, scores, gt_boxes, iou_threshold=0.5):
    order = T.argsort(scores, descending=True)
    boxes = boxes[order]
    detected = T.zeros(len(gt_boxes), dtype=T.bool)
    tp = T.zeros(len(boxes))
    ious, _ = box_iou(T, boxes, gt_boxes)
    for d in range(len(boxes)):
        ovmax, jmax = ious[d].max(0)
        if ovmax > iou_threshold and not detected[jmax]:
            tp[d] = 1.0
            detected[jmax] = True
    fp = 1 - tp
    tp, fp = T.cumsum(tp, dim=0), fp.cumsum(0)
    rec = tp / len(gt_boxes)
    prec = tp / T.maximum(tp + fp, T.tensor(T.finfo(T.float32).eps))
    # VOC 2010+: the precision envelope, summed where recall changes
    mrec = T.cat([T.tensor([0.0]), rec, T.tensor([1.0])])
    mpre = T.cat([T.tensor([0.0]), prec, T.tensor([0.0])])
    for i in range(mpre.numel() - 1, 0, -1):
        mpre[i - 1] = T.maximum(mpre[i - 1], mpre[i])
    i = T.where(mrec[1:] != mrec[:-1])[0]
    voc = T.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1])
    # COCO: 101 recall thresholds, the envelope by a reversed cummax, looked up by searchsorted
    rec_thrs = T.linspace(0, 1, 101)
    q = T.zeros(101)
    pr = T.flip(T.cummax(T.flip(prec, [0]), dim=0)[0], [0])
    inds = T.searchsorted(rec, rec_thrs, side="left")
    valid = inds < len(pr)
    q[valid] = pr[inds[valid]]
    return voc, q.mean(), tp, fp


def map_script(T, dets, gts):
    out = []
    aps = []
    for (boxes, scores), gt in zip(dets, gts):
        voc, coco, tp, fp = average_precision(T, T.tensor(boxes), T.tensor(scores), T.tensor(gt))
        aps.append(voc)
        out += [voc.item(), coco.item()] + tp.tolist() + fp.tolist()
    return out + [T.stack(aps).mean().item()]


def test_mean_average_precision():
    rng = np.random.default_rng(5)
    dets, gts = [], []
    for _ in range(3):
        gt = random_boxes(rng, 4)
        noisy = np.concatenate([gt + rng.normal(0, 1.0, gt.shape), random_boxes(rng, 5)]).astype(np.float32)
        noisy[:, 2:] = np.maximum(noisy[:, 2:], noisy[:, :2] + 0.5)
        dets.append((noisy, rng.permutation(9).astype(np.float32)))
        gts.append(gt)
    want, got = map_script(torch, dets, gts), map_script(tensor, dets, gts)
    assert 0 < want[-1] < 1
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# ---- 7. TCN: causal dilated Conv1d (pad then chomp), weight norm, residual 1x1, OneCycleLR -----------

def tcn(T, style, num_inputs=2, num_channels=(4, 4), kernel_size=2, dropout=0.0):
    nn = T.nn
    weight_norm = nn.utils.weight_norm if style == "utils" else nn.utils.parametrizations.weight_norm

    class Chomp1d(nn.Module):
        def __init__(self, chomp_size):
            super().__init__()
            self.chomp_size = chomp_size

        def forward(self, x):
            return x[:, :, :-self.chomp_size].contiguous()

    class TemporalBlock(nn.Module):
        def __init__(self, n_inputs, n_outputs, kernel_size, stride, dilation, padding, dropout=0.2):
            super().__init__()
            self.conv1 = weight_norm(nn.Conv1d(n_inputs, n_outputs, kernel_size, stride=stride, padding=padding,
                                               dilation=dilation))
            self.chomp1 = Chomp1d(padding)
            self.relu1 = nn.ReLU()
            self.dropout1 = nn.Dropout(dropout)
            self.conv2 = weight_norm(nn.Conv1d(n_outputs, n_outputs, kernel_size, stride=stride, padding=padding,
                                               dilation=dilation))
            self.chomp2 = Chomp1d(padding)
            self.relu2 = nn.ReLU()
            self.dropout2 = nn.Dropout(dropout)
            self.net = nn.Sequential(self.conv1, self.chomp1, self.relu1, self.dropout1,
                                     self.conv2, self.chomp2, self.relu2, self.dropout2)
            self.downsample = nn.Conv1d(n_inputs, n_outputs, 1) if n_inputs != n_outputs else None
            self.relu = nn.ReLU()

        def forward(self, x):
            out = self.net(x)
            res = x if self.downsample is None else self.downsample(x)
            return self.relu(out + res)

    class TCN(nn.Module):
        def __init__(self):
            super().__init__()
            layers = []
            for i in range(len(num_channels)):
                dilation_size = 2 ** i
                in_channels = num_inputs if i == 0 else num_channels[i - 1]
                layers += [TemporalBlock(in_channels, num_channels[i], kernel_size, stride=1,
                                         dilation=dilation_size, padding=(kernel_size - 1) * dilation_size,
                                         dropout=dropout)]
            self.network = nn.Sequential(*layers)
            self.linear = nn.Linear(num_channels[-1], 1)

        def forward(self, x):  # x: (N, C_in, L) -> one-step-ahead forecast per time step (N, L)
            return self.linear(self.network(x).transpose(1, 2)).squeeze(-1)

    return TCN()


def train_tcn(T, device, init, series, style, epochs=2):
    device = device_of(T, device)
    model = ported_model(T, lambda T: tcn(T, style), init, device)
    x = T.tensor(series[:, :, :-1]).to(device)
    y = T.tensor(series[:, 0, 1:]).to(device)
    loader = T.utils.data.DataLoader(T.utils.data.TensorDataset(x, y), batch_size=2)
    opt = T.optim.Adam(model.parameters(), lr=4e-3)
    sched = T.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, epochs=epochs, steps_per_epoch=len(loader))
    losses = []
    for _ in range(epochs):
        for xb, yb in loader:
            opt.zero_grad()
            loss = T.nn.functional.mse_loss(model(xb), yb)
            loss.backward()
            T.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            opt.step()
            sched.step()
            losses.append(loss.item())
    # causality: changing the last input step changes only the last output
    with T.no_grad():
        x2 = x.clone()
        x2[:, :, -1] += 1.0
        diff = (model(x2) - model(x)).abs()
        assert diff[:, :-1].max().item() == 0 and diff[:, -1].min().item() > 0
    return losses, numpy_state(model)


@pytest.mark.parametrize("style", ["utils", "parametrizations"])
def test_tcn_weight_norm(device, style):
    rng = np.random.default_rng(6)
    t = np.linspace(0, 4 * np.pi, 13)
    series = np.stack([np.stack([np.sin(t + p), np.cos(2 * t + p)]) for p in rng.uniform(0, 6, 4)])
    series = (series + 0.05 * rng.standard_normal(series.shape)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_tcn, device, numpy_state(tcn(torch, style)), series, style)


# ---- 8. LSTM seq2seq forecaster: teacher forcing, autoregressive rollout, CosineAnnealingWarmRestarts -

def seq2seq(T, hidden=6):
    nn = T.nn

    class Seq2Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.LSTM(1, hidden, num_layers=1, batch_first=True)
            self.decoder = nn.LSTMCell(1, hidden)
            self.head = nn.Linear(hidden, 1)

        def forward(self, src, horizon, target=None, teacher_forcing=None):
            _, (h, c) = self.encoder(src)
            h, c = h[-1], c[-1]
            inp = src[:, -1, :]
            outputs = []
            for t in range(horizon):
                h, c = self.decoder(inp, (h, c))
                out = self.head(h)
                outputs.append(out)
                inp = target[:, t, :] if target is not None and teacher_forcing[t] else out
            return T.stack(outputs, dim=1)

    return Seq2Seq()


def train_seq2seq(T, device, init, series, coins, lookback=6, horizon=3):
    device = device_of(T, device)
    model = ported_model(T, seq2seq, init, device)
    s = T.tensor(series).to(device)
    windows = s.unfold(0, lookback + horizon, 1)  # (N, lookback + horizon)
    strided = s.as_strided((len(s) - lookback - horizon + 1, lookback + horizon), (1, 1))  # the NumPy-style way
    assert T.equal(strided, windows)
    src, tgt = windows[:, :lookback].unsqueeze(-1), windows[:, lookback:].unsqueeze(-1)
    opt = T.optim.Adam(model.parameters(), lr=1e-2)
    iters = 2
    sched = T.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=1, T_mult=2, eta_min=1e-4)
    losses = []
    for epoch in range(2):
        for i, idx in enumerate(T.arange(len(src)).split(len(src) // iters + 1)):
            model.train()
            opt.zero_grad()
            pred = model(src[idx], horizon, tgt[idx], coins[epoch * iters + i])
            loss = T.nn.functional.mse_loss(pred, tgt[idx])
            loss.backward()
            T.nn.utils.clip_grad_value_(model.parameters(), 0.5)
            opt.step()
            sched.step(epoch + i / iters)
            losses += [loss.item(), sched.get_last_lr()[0]]
    model.eval()
    with T.no_grad():
        history = s[-lookback:].view(1, -1, 1)
        rollout = model(history, 5)  # autoregressive, no targets
        losses += rollout.flatten().tolist()
    return losses, numpy_state(model)


def test_lstm_seq2seq_forecaster(device):
    rng = np.random.default_rng(7)
    series = (np.sin(np.linspace(0, 6 * np.pi, 20)) + 0.1 * rng.standard_normal(20)).astype(np.float32)
    coins = rng.random((4, 3)) < 0.5
    torch.manual_seed(0)
    run_both(train_seq2seq, device, numpy_state(seq2seq(torch)), series, coins)


# ---- 9. Transformer forecaster: sinusoidal PositionalEncoding buffer, causal mask, batch_first -------

def transformer_forecaster(T, d_model=8, nhead=2, max_len=32):
    nn = T.nn

    class PositionalEncoding(nn.Module):
        def __init__(self, d_model, dropout=0.1, max_len=5000):
            super().__init__()
            self.dropout = nn.Dropout(p=dropout)
            position = T.arange(max_len).unsqueeze(1)
            div_term = T.exp(T.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
            pe = T.zeros(1, max_len, d_model)
            pe[0, :, 0::2] = T.sin(position * div_term)
            pe[0, :, 1::2] = T.cos(position * div_term)
            self.register_buffer("pe", pe)

        def forward(self, x):
            x = x + self.pe[:, :x.size(1)]
            return self.dropout(x)

    class TransformerForecaster(nn.Module):
        def __init__(self):
            super().__init__()
            self.input_proj = nn.Linear(1, d_model)
            self.pos_encoder = PositionalEncoding(d_model, dropout=0.0, max_len=max_len)
            encoder_layers = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=16, dropout=0.0,
                                                        batch_first=True)
            self.transformer_encoder = nn.TransformerEncoder(encoder_layers, num_layers=2)
            self.decoder = nn.Linear(d_model, 1)
            self.d_model = d_model

        @staticmethod
        def generate_square_subsequent_mask(sz):
            return T.triu(T.full((sz, sz), float("-inf")), diagonal=1)

        def forward(self, src, src_mask=None):
            if src_mask is None:
                src_mask = self.generate_square_subsequent_mask(src.size(1)).to(src.device)
            src = self.input_proj(src) * math.sqrt(self.d_model)
            src = self.pos_encoder(src)
            output = self.transformer_encoder(src, mask=src_mask)
            return self.decoder(output)

    return TransformerForecaster()


def train_transformer_forecaster(T, device, init, series, steps=3, window=8):
    device = device_of(T, device)
    model = ported_model(T, transformer_forecaster, init, device)
    windows = T.tensor(series).unfold(0, window + 1, 2).to(device)  # (N, window + 1)
    x, y = windows[:, :-1, None], windows[:, 1:, None]
    # SGD, not Adam: attention's key bias has an exactly-zero gradient (softmax ignores a shift shared by
    # all keys) whose float noise Adam would amplify into different updates
    opt = T.optim.SGD(model.parameters(), lr=5e-2, momentum=0.9, weight_decay=0.01)
    sched = T.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, (step + 1) / 2))
    losses = []
    for _ in range(steps):
        model.train()
        opt.zero_grad()
        loss = T.nn.functional.mse_loss(model(x), y)
        loss.backward()
        T.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        sched.step()
        losses.append(loss.item())
    mask = T.nn.Transformer.generate_square_subsequent_mask(window, device=device)
    assert (mask == model.generate_square_subsequent_mask(window).to(device)).all()
    model.eval()
    with T.no_grad():
        out = model(x[:2], mask)
        # causal: the first step's output does not see the rest
        out_prefix = model(x[:2, :3])
        np.testing.assert_allclose(out[:, :3].cpu().numpy(), out_prefix.cpu().numpy(), rtol=1e-4, atol=1e-5)
        seq = x[:1]
        for _ in range(3):  # autoregressive generation, one step at a time
            nxt = model(seq)[:, -1:, :]
            seq = T.cat([seq, nxt], dim=1)
        losses += seq[0, -3:, 0].tolist()
    return losses, numpy_state(model)


def test_transformer_forecaster(device):
    rng = np.random.default_rng(8)
    series = (np.sin(np.linspace(0, 5 * np.pi, 21)) + 0.1 * rng.standard_normal(21)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_transformer_forecaster, device, numpy_state(transformer_forecaster(torch)), series)


# ---- 10. N-BEATS: generic, trend (polynomial) and seasonality (Fourier) blocks on linspace bases ------

def nbeats(T, backcast=8, forecast=3, width=8):
    nn = T.nn

    class NBeatsBlock(nn.Module):
        def __init__(self, input_size, theta_size, basis_function, layers, layer_size):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(in_features=input_size, out_features=layer_size)]
                                        + [nn.Linear(in_features=layer_size, out_features=layer_size)
                                           for _ in range(layers - 1)])
            self.basis_parameters = nn.Linear(in_features=layer_size, out_features=theta_size)
            self.basis_function = basis_function

        def forward(self, x):
            block_input = x
            for layer in self.layers:
                block_input = T.relu(layer(block_input))
            basis_parameters = self.basis_parameters(block_input)
            return self.basis_function(basis_parameters)

    class GenericBasis(nn.Module):
        def __init__(self, backcast_size, forecast_size):
            super().__init__()
            self.backcast_size, self.forecast_size = backcast_size, forecast_size

        def forward(self, theta):
            return theta[:, :self.backcast_size], theta[:, -self.forecast_size:]

    class TrendBasis(nn.Module):
        def __init__(self, degree_of_polynomial, backcast_size, forecast_size):
            super().__init__()
            self.polynomial_size = degree_of_polynomial + 1
            tb, tf = T.linspace(0, 1, backcast_size), T.linspace(1, 1 + forecast_size / backcast_size, forecast_size)
            self.backcast_time = nn.Parameter(T.stack([tb ** i for i in range(self.polynomial_size)]),
                                              requires_grad=False)
            self.forecast_time = nn.Parameter(T.stack([tf ** i for i in range(self.polynomial_size)]),
                                              requires_grad=False)

        def forward(self, theta):
            backcast = T.einsum("bp,pt->bt", theta[:, self.polynomial_size:], self.backcast_time)
            forecast = T.einsum("bp,pt->bt", theta[:, :self.polynomial_size], self.forecast_time)
            return backcast, forecast

    class SeasonalityBasis(nn.Module):
        def __init__(self, harmonics, backcast_size, forecast_size):
            super().__init__()
            frequency = T.arange(1, harmonics + 1, dtype=T.float32)[:, None]
            tb = T.linspace(0, 1, backcast_size)[None, :]
            tf = T.linspace(0, 1, forecast_size)[None, :]
            self.register_buffer("backcast_basis", T.cat([T.cos(2 * math.pi * frequency * tb),
                                                          T.sin(2 * math.pi * frequency * tb)]))
            self.register_buffer("forecast_basis", T.cat([T.cos(2 * math.pi * frequency * tf),
                                                          T.sin(2 * math.pi * frequency * tf)]))

        def forward(self, theta):
            params_per_harmonic = theta.shape[1] // 2
            backcast = T.matmul(theta[:, params_per_harmonic:], self.backcast_basis)
            forecast = T.matmul(theta[:, :params_per_harmonic], self.forecast_basis)
            return backcast, forecast

    class NBeats(nn.Module):
        def __init__(self, blocks):
            super().__init__()
            self.blocks = blocks

        def forward(self, x, input_mask):
            residuals = x.flip(dims=(1,))
            input_mask = input_mask.flip(dims=(1,))
            forecast = x[:, -1:]
            for block in self.blocks:
                backcast, block_forecast = block(residuals)
                residuals = (residuals - backcast) * input_mask
                forecast = forecast + block_forecast
            return forecast

    degree, harmonics = 2, 2
    return NBeats(nn.ModuleList([
        NBeatsBlock(backcast, backcast + forecast, GenericBasis(backcast, forecast), 2, width),
        NBeatsBlock(backcast, 2 * (degree + 1), TrendBasis(degree, backcast, forecast), 2, width),
        NBeatsBlock(backcast, 4 * harmonics, SeasonalityBasis(harmonics, backcast, forecast), 2, width),
    ]))



def train_nbeats(T, device, init, series, mask, steps=3, backcast=8, forecast=3):
    device = device_of(T, device)
    model = ported_model(T, nbeats, init, device)
    windows = T.tensor(series).to(device).unfold(-1, backcast + forecast, 1).reshape(-1, backcast + forecast)
    x, y = windows[:, :backcast], windows[:, backcast:]
    input_mask = T.tensor(mask).to(device)
    opt = T.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        f = model(x, input_mask)
        # N-BEATS' MASE-free variant: the mean absolute error, NaN-safe scaling as the reference does it
        scale = y.abs().mean(dim=1, keepdim=True)
        weights = 1.0 / scale
        weights[weights == float("inf")] = 0.0
        loss = T.mean(T.abs(f - y) * weights)
        loss.backward()
        T.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
    return losses, numpy_state(model)


def test_nbeats(device):
    rng = np.random.default_rng(9)
    t = np.arange(16)
    series = np.stack([np.sin(t / 2 + p) + 0.05 * t for p in rng.uniform(0, 6, 3)]).astype(np.float32)
    series[0, -5:] = 0.0  # one window's target is all zero: its weight is inf, then zeroed
    mask = np.ones((6 * 3, 8), np.float32)
    mask[:2, :2] = 0.0
    torch.manual_seed(0)
    run_both(train_nbeats, device, numpy_state(nbeats(torch)), series, mask)


# ---- 11. RevIN + DLinear (moving-average decomposition) + patching, quantile loss, window Dataset -----

def revin_dlinear(T, seq_len=8, pred_len=3, channels=2, kernel_size=3, quantiles=(0.1, 0.5, 0.9),
                  patch_len=4, stride=2):
    nn = T.nn

    class RevIN(nn.Module):
        def __init__(self, num_features, eps=1e-5, affine=True):
            super().__init__()
            self.num_features, self.eps, self.affine = num_features, eps, affine
            if self.affine:
                self.affine_weight = nn.Parameter(T.ones(self.num_features))
                self.affine_bias = nn.Parameter(T.zeros(self.num_features))

        def forward(self, x, mode):
            if mode == "norm":
                self._get_statistics(x)
                x = self._normalize(x)
            elif mode == "denorm":
                x = self._denormalize(x)
            else:
                raise NotImplementedError
            return x

        def _get_statistics(self, x):
            dim2reduce = tuple(range(1, x.ndim - 1))
            self.mean = T.mean(x, dim=dim2reduce, keepdim=True).detach()
            self.stdev = T.sqrt(T.var(x, dim=dim2reduce, keepdim=True, unbiased=False) + self.eps).detach()

        def _normalize(self, x):
            x = x - self.mean
            x = x / self.stdev
            if self.affine:
                x = x * self.affine_weight
                x = x + self.affine_bias
            return x

        def _denormalize(self, x):
            if self.affine:
                x = x - self.affine_bias.unsqueeze(-1)
                x = x / (self.affine_weight.unsqueeze(-1) + self.eps * self.eps)
            x = x * self.stdev.unsqueeze(-1)
            x = x + self.mean.unsqueeze(-1)
            return x

    class MovingAvg(nn.Module):
        def __init__(self, kernel_size, stride):
            super().__init__()
            self.kernel_size = kernel_size
            self.avg = nn.AvgPool1d(kernel_size=kernel_size, stride=stride, padding=0)

        def forward(self, x):
            front = x[:, 0:1, :].repeat(1, (self.kernel_size - 1) // 2, 1)
            end = x[:, -1:, :].repeat(1, (self.kernel_size - 1) // 2, 1)
            x = T.cat([front, x, end], dim=1)
            x = self.avg(x.permute(0, 2, 1))
            return x.permute(0, 2, 1)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.revin = RevIN(channels)
            self.moving_avg = MovingAvg(kernel_size, stride=1)
            self.Linear_Seasonal = nn.Linear(seq_len, pred_len)
            self.Linear_Trend = nn.Linear(seq_len, pred_len)
            # a PatchTST-style branch: replicate-pad the end, cut patches by unfold, embed, flatten
            self.padding_patch_layer = nn.ReplicationPad1d((0, stride))
            num_patches = (seq_len + stride - patch_len) // stride + 1
            self.patch_embed = nn.Linear(patch_len, 4)
            self.patch_head = nn.Sequential(nn.Flatten(start_dim=-2), nn.Linear(num_patches * 4, pred_len))
            self.quantile_head = nn.Linear(1, len(quantiles))

        def forward(self, x):  # x: (batch, seq_len, channels) -> (batch, channels, pred_len, quantiles)
            x = self.revin(x, "norm")
            trend_init = self.moving_avg(x)
            seasonal_init = x - trend_init
            seasonal_init, trend_init = seasonal_init.permute(0, 2, 1), trend_init.permute(0, 2, 1)
            out = self.Linear_Seasonal(seasonal_init) + self.Linear_Trend(trend_init)
            z = self.padding_patch_layer(x.permute(0, 2, 1))
            z = z.unfold(dimension=-1, size=patch_len, step=stride)  # (batch, channels, patches, patch_len)
            out = out + self.patch_head(T.relu(self.patch_embed(z)))
            out = self.revin(out, "denorm")
            return self.quantile_head(out.unsqueeze(-1))

    return Model()


def quantile_loss(T, preds, target, quantiles):
    losses = []
    for i, q in enumerate(quantiles):
        errors = target - preds[..., i]
        losses.append(T.max((q - 1) * errors, q * errors).unsqueeze(-1))
    return T.mean(T.sum(T.cat(losses, dim=-1), dim=-1))


def window_dataset(T, data, seq_len, pred_len):
    class WindowDataset(T.utils.data.Dataset):
        def __init__(self):
            self.data = T.from_numpy(data)  # (time, channels)

        def __len__(self):
            return len(self.data) - seq_len - pred_len + 1

        def __getitem__(self, idx):
            x = self.data[idx:idx + seq_len]
            y = self.data[idx + seq_len:idx + seq_len + pred_len]
            return x, y.T

    return WindowDataset()


def train_revin_dlinear(T, device, init, data, quantiles=(0.1, 0.5, 0.9), epochs=2):
    device = device_of(T, device)
    model = ported_model(T, revin_dlinear, init, device)
    loader = T.utils.data.DataLoader(window_dataset(T, data, 8, 3), batch_size=4, shuffle=False, drop_last=True)
    opt = T.optim.Adam(model.parameters(), lr=1e-2)
    sched = T.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-2, total_steps=epochs * len(loader),
                                            anneal_strategy="linear", pct_start=0.4)
    losses = []
    for _ in range(epochs):
        for x, y in loader:
            x, y = x.to(device).float(), y.to(device).float()
            opt.zero_grad()
            loss = quantile_loss(T, model(x), y, quantiles)
            loss.backward()
            T.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0, norm_type=2.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
    with T.no_grad():
        x, y = next(iter(loader))
        pred = model(x.to(device))
        coverage = ((y.to(device) >= pred[..., 0]) & (y.to(device) <= pred[..., -1])).float().mean()
        losses += [coverage.item(), T.median(pred[..., 1]).item()]
    return losses, numpy_state(model)


def test_revin_dlinear_quantile_loss(device):
    rng = np.random.default_rng(10)
    t = np.arange(26)
    data = np.stack([3 + np.sin(t / 2), 10 + 0.2 * t], axis=1) + 0.1 * rng.standard_normal((26, 2))
    torch.manual_seed(0)
    run_both(train_revin_dlinear, device, numpy_state(revin_dlinear(torch)), data.astype(np.float32))


# ---- 12. DeepAR-style Gaussian likelihood: softplus scale, Normal.log_prob, GaussianNLLLoss ----------

def deepar(T, hidden=6):
    nn = T.nn

    class DeepAR(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(2, hidden, num_layers=2, batch_first=True, dropout=0.0)
            self.mu, self.presigma = nn.Linear(hidden, 1), nn.Linear(hidden, 1)

        def forward(self, x, h=None):
            out, h = self.rnn(x, h)
            return self.mu(out).squeeze(-1), nn.functional.softplus(self.presigma(out)).squeeze(-1) + 1e-3, h

    return DeepAR()


def train_deepar(T, device, init, series, covariate, eps, steps=3):
    device = device_of(T, device)
    model = ported_model(T, deepar, init, device)
    z = T.tensor(series).to(device)
    scale = z[:, :-1].abs().mean(dim=1, keepdim=True) + 1
    inputs = T.stack([z[:, :-1] / scale, T.tensor(covariate).to(device)[:, 1:]], dim=-1)
    target = z[:, 1:] / scale
    opt = T.optim.RMSprop(model.parameters(), lr=5e-3)
    gnll = T.nn.GaussianNLLLoss(full=True)
    losses = []
    for _ in range(steps):
        mu, sigma, _ = model(inputs)
        nll = -T.distributions.Normal(mu, sigma).log_prob(target).mean()
        loss = nll + 0.5 * gnll(mu, target, sigma ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses += [nll.item(), loss.item()]
    with T.no_grad():  # ancestral sampling over the horizon with the noise given
        _, _, h = model(inputs)
        last = target[:, -1]
        for t in range(eps.shape[1]):
            x_t = T.stack([last, T.zeros_like(last)], dim=-1).unsqueeze(1)
            mu, sigma, h = model(x_t, h)
            last = (mu + sigma * T.tensor(eps[:, t:t + 1]).to(device)).squeeze(1)
            losses += (last * scale.squeeze(1)).tolist()
    return losses, numpy_state(model)


def test_deepar_gaussian_likelihood(device):
    rng = np.random.default_rng(11)
    series = (5 + np.cumsum(rng.standard_normal((3, 10)), axis=1)).astype(np.float32)
    covariate = np.tile(np.sin(np.arange(10) / 3), (3, 1)).astype(np.float32)
    eps = rng.standard_normal((3, 3)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_deepar, device, numpy_state(deepar(torch)), series, covariate, eps)

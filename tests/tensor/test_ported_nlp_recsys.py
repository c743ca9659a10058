"""NLP classics and recommender systems as reference implementations write them, ported by imports.

word2vec (skip-gram, negative sampling), Kim's TextCNN, the PyTorch tutorial's BiLSTM-CRF, attention
pooling over packed / padded sequences, fastText's EmbeddingBag; matrix factorization, BPR, NeuMF,
Wide & Deep, DLRM's pairwise interactions, DCN cross layers, a factorization machine, in-batch
negatives with a sampled softmax, and hit-rate / NDCG evaluation.

Same method as test_ported_scripts.py: each script is a function of the library module `T` (torch or
tensor) that runs unchanged on both; the model is built in torch and its state copied into raygrad, both
see the same NumPy data (random draws such as negatives are passed in), and losses and final parameters
agree to float32 accuracy.
"""
import numpy as np
import pytest

from test_ported_scripts import device_of, numpy_state, ported_model, run_both

torch = pytest.importorskip("torch")


# ---- 1. word2vec: skip-gram with negative sampling ----------------------------------------------------

def skipgram(T, vocab=20, dim=6):
    nn, F = T.nn, T.nn.functional

    class SkipGramModel(nn.Module):
        def __init__(self, emb_size, emb_dimension):
            super().__init__()
            self.emb_size, self.emb_dimension = emb_size, emb_dimension
            self.u_embeddings = nn.Embedding(emb_size, emb_dimension, sparse=False)
            self.v_embeddings = nn.Embedding(emb_size, emb_dimension, sparse=False)
            initrange = 1.0 / self.emb_dimension
            # `nn.init.uniform_(self.u_embeddings.weight.data, ...)` there: .data is the raw array (README)
            nn.init.uniform_(self.u_embeddings.weight, -initrange, initrange)
            nn.init.constant_(self.v_embeddings.weight, 0)

        def forward(self, pos_u, pos_v, neg_v):
            emb_u = self.u_embeddings(pos_u)                     # (B, D)
            emb_v = self.v_embeddings(pos_v)                     # (B, D)
            emb_neg_v = self.v_embeddings(neg_v)                 # (B, K, D)
            score = T.sum(T.mul(emb_u, emb_v), dim=1)
            score = T.clamp(score, max=10, min=-10)
            score = -F.logsigmoid(score)
            neg_score = T.bmm(emb_neg_v, emb_u.unsqueeze(2)).squeeze()
            neg_score = T.clamp(neg_score, max=10, min=-10)
            neg_score = -T.sum(F.logsigmoid(-neg_score), dim=1)
            return T.mean(score + neg_score)

    return SkipGramModel(vocab, dim)


def train_skipgram(T, device, init, batches):
    device = device_of(T, device)
    model = ported_model(T, skipgram, init, device)
    optimizer = T.optim.SGD(model.parameters(), lr=0.5)
    losses = []
    for pos_u, pos_v, neg_v in batches:
        pos_u, pos_v, neg_v = (T.from_numpy(a).to(device) for a in (pos_u, pos_v, neg_v))
        optimizer.zero_grad()
        loss = model.forward(pos_u, pos_v, neg_v)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, numpy_state(model)


def test_word2vec_skipgram_negative_sampling(device):
    rng = np.random.default_rng(0)
    batches = [(rng.integers(0, 20, 8), rng.integers(0, 20, 8), rng.integers(0, 20, (8, 4))) for _ in range(4)]
    torch.manual_seed(0)
    run_both(train_skipgram, device, numpy_state(skipgram(torch)), batches)


# ---- 2. Kim's TextCNN: convolutions of several widths over embeddings, max-over-time pooling ----------

def textcnn(T, vocab=15, dim=6, classes=3, conv2d=True):
    nn, F = T.nn, T.nn.functional

    class CNN_Text(nn.Module):
        def __init__(self, Ks=(2, 3, 4), Co=4):
            super().__init__()
            self.embed = nn.Embedding(vocab, dim)
            if conv2d:
                self.convs1 = nn.ModuleList([nn.Conv2d(1, Co, (K, dim)) for K in Ks])
            else:
                self.convs1 = nn.ModuleList([nn.Conv1d(dim, Co, K, padding=1) for K in Ks])
            self.dropout = nn.Dropout(0.0)
            self.fc1 = nn.Linear(len(Ks) * Co, classes)

        def forward(self, x):
            x = self.embed(x)  # (N, W, D)
            if conv2d:
                x = x.unsqueeze(1)  # (N, Ci, W, D)
                x = [F.relu(conv(x)).squeeze(3) for conv in self.convs1]  # [(N, Co, W), ...]*len(Ks)
            else:
                x = x.permute(0, 2, 1)
                x = [F.relu(conv(x)) for conv in self.convs1]
            x = [F.max_pool1d(i, i.size(2)).squeeze(2) for i in x]  # [(N, Co), ...]*len(Ks)
            x = T.cat(x, 1)
            x = self.dropout(x)  # (N, len(Ks)*Co)
            return self.fc1(x)

    return CNN_Text()


def train_textcnn(T, device, init, tokens, labels, conv2d):
    device = device_of(T, device)
    model = ported_model(T, lambda T: textcnn(T, conv2d=conv2d), init, device)
    optimizer = T.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    x, y = T.tensor(tokens, device=device), T.tensor(labels, device=device)
    for _ in range(4):
        optimizer.zero_grad()
        logit = model(x)
        loss = T.nn.functional.cross_entropy(logit, y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with T.no_grad():
        corrects = (T.max(model(x), 1)[1].view(y.size()).data == y.data).sum()
    return losses + [corrects.item()], numpy_state(model)


@pytest.mark.parametrize("conv2d", [True, False])
def test_textcnn(device, conv2d):
    rng = np.random.default_rng(1)
    tokens, labels = rng.integers(0, 15, (6, 9)), rng.integers(0, 3, 6)
    torch.manual_seed(0)
    init = numpy_state(textcnn(torch, conv2d=conv2d))
    run_both(train_textcnn, device, init, tokens, labels, conv2d)


# ---- 3. BiLSTM-CRF, as in the PyTorch tutorial (and a batched CRF) --------------------------------------

START_TAG, STOP_TAG = "<START>", "<STOP>"
TAG_TO_IX = {"B": 0, "I": 1, "O": 2, START_TAG: 3, STOP_TAG: 4}


def bilstm_crf(T, vocab_size=10, tag_to_ix=TAG_TO_IX, embedding_dim=5, hidden_dim=4):
    nn = T.nn

    def argmax(vec):
        # return the argmax as a python int
        _, idx = T.max(vec, 1)
        return idx.item()

    def log_sum_exp(vec):
        max_score = vec[0, argmax(vec)]
        max_score_broadcast = max_score.view(1, -1).expand(1, vec.size()[1])
        return max_score + T.log(T.sum(T.exp(vec - max_score_broadcast)))

    class BiLSTM_CRF(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding_dim = embedding_dim
            self.hidden_dim = hidden_dim
            self.vocab_size = vocab_size
            self.tag_to_ix = tag_to_ix
            self.tagset_size = len(tag_to_ix)
            self.word_embeds = nn.Embedding(vocab_size, embedding_dim)
            self.lstm = nn.LSTM(embedding_dim, hidden_dim // 2, num_layers=1, bidirectional=True)
            self.hidden2tag = nn.Linear(hidden_dim, self.tagset_size)
            self.transitions = nn.Parameter(T.randn(self.tagset_size, self.tagset_size))
            self.transitions.data[tag_to_ix[START_TAG], :] = -10000
            self.transitions.data[:, tag_to_ix[STOP_TAG]] = -10000
            self.hidden = None

        def _forward_alg(self, feats):
            device = feats.device
            init_alphas = T.full((1, self.tagset_size), -10000., device=device)
            init_alphas[0][self.tag_to_ix[START_TAG]] = 0.
            forward_var = init_alphas
            for feat in feats:
                alphas_t = []
                for next_tag in range(self.tagset_size):
                    emit_score = feat[next_tag].view(1, -1).expand(1, self.tagset_size)
                    trans_score = self.transitions[next_tag].view(1, -1)
                    next_tag_var = forward_var + trans_score + emit_score
                    alphas_t.append(log_sum_exp(next_tag_var).view(1))
                forward_var = T.cat(alphas_t).view(1, -1)
            terminal_var = forward_var + self.transitions[self.tag_to_ix[STOP_TAG]]
            return log_sum_exp(terminal_var)

        def _get_lstm_features(self, sentence):
            embeds = self.word_embeds(sentence).view(len(sentence), 1, -1)
            lstm_out, self.hidden = self.lstm(embeds, self.hidden)
            lstm_out = lstm_out.view(len(sentence), self.hidden_dim)
            return self.hidden2tag(lstm_out)

        def _score_sentence(self, feats, tags):
            device = feats.device
            score = T.zeros(1, device=device)
            tags = T.cat([T.tensor([self.tag_to_ix[START_TAG]], dtype=T.long, device=device), tags])
            for i, feat in enumerate(feats):
                score = score + self.transitions[tags[i + 1], tags[i]] + feat[tags[i + 1]]
            return score + self.transitions[self.tag_to_ix[STOP_TAG], tags[-1]]

        def _viterbi_decode(self, feats):
            backpointers = []
            init_vvars = T.full((1, self.tagset_size), -10000., device=feats.device)
            init_vvars[0][self.tag_to_ix[START_TAG]] = 0
            forward_var = init_vvars
            for feat in feats:
                bptrs_t = []
                viterbivars_t = []
                for next_tag in range(self.tagset_size):
                    next_tag_var = forward_var + self.transitions[next_tag]
                    best_tag_id = argmax(next_tag_var)
                    bptrs_t.append(best_tag_id)
                    viterbivars_t.append(next_tag_var[0][best_tag_id].view(1))
                forward_var = (T.cat(viterbivars_t) + feat).view(1, -1)
                backpointers.append(bptrs_t)
            terminal_var = forward_var + self.transitions[self.tag_to_ix[STOP_TAG]]
            best_tag_id = argmax(terminal_var)
            path_score = terminal_var[0][best_tag_id]
            best_path = [best_tag_id]
            for bptrs_t in reversed(backpointers):
                best_tag_id = bptrs_t[best_tag_id]
                best_path.append(best_tag_id)
            start = best_path.pop()
            assert start == self.tag_to_ix[START_TAG]
            best_path.reverse()
            return path_score, best_path

        def neg_log_likelihood(self, sentence, tags):
            feats = self._get_lstm_features(sentence)
            forward_score = self._forward_alg(feats)
            gold_score = self._score_sentence(feats, tags)
            return forward_score - gold_score

        def forward(self, sentence):
            lstm_feats = self._get_lstm_features(sentence)
            return self._viterbi_decode(lstm_feats)

    return BiLSTM_CRF()


def train_bilstm_crf(T, device, init, data, hiddens):
    device = device_of(T, device)
    model = ported_model(T, bilstm_crf, init, device)
    optimizer = T.optim.SGD(model.parameters(), lr=0.01, weight_decay=1e-4)
    losses = []
    step = 0
    for epoch in range(2):
        for sentence, tags in data:
            model.zero_grad()
            # init_hidden() draws torch.randn: the draws are passed in
            model.hidden = tuple(T.tensor(h, device=device) for h in hiddens[step])
            sentence_in = T.tensor(sentence, dtype=T.long, device=device)
            targets = T.tensor(tags, dtype=T.long, device=device)
            loss = model.neg_log_likelihood(sentence_in, targets)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            step += 1
    with T.no_grad():
        model.hidden = tuple(T.tensor(h, device=device) for h in hiddens[step])
        score, path = model(T.tensor(data[0][0], dtype=T.long, device=device))
    return losses + [score.item()] + path, numpy_state(model)


def test_bilstm_crf_tutorial(device):
    rng = np.random.default_rng(2)
    data = [(rng.integers(0, 10, n), rng.integers(0, 3, n)) for n in (5, 4, 6)]
    hiddens = rng.standard_normal((7, 2, 2, 1, 2)).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_bilstm_crf, device, numpy_state(bilstm_crf(torch)), data, hiddens)


def batched_crf(T, num_tags=4):
    nn = T.nn

    class CRF(nn.Module):
        """A linear-chain CRF over (B, L, num_tags) emissions with a mask, vectorised over the batch."""

        def __init__(self):
            super().__init__()
            self.start_transitions = nn.Parameter(T.empty(num_tags).uniform_(-0.1, 0.1))
            self.end_transitions = nn.Parameter(T.empty(num_tags).uniform_(-0.1, 0.1))
            self.transitions = nn.Parameter(T.empty(num_tags, num_tags).uniform_(-0.1, 0.1))

        def forward(self, emissions, tags, mask):
            return -(self._compute_score(emissions, tags, mask) - self._compute_normalizer(emissions, mask)).mean()

        def _compute_score(self, emissions, tags, mask):
            batch_size, seq_length = tags.shape
            mask = mask.float()
            score = self.start_transitions[tags[:, 0]]
            score += emissions[T.arange(batch_size), 0, tags[:, 0]]
            for i in range(1, seq_length):
                score += self.transitions[tags[:, i - 1], tags[:, i]] * mask[:, i]
                score += emissions[T.arange(batch_size), i, tags[:, i]] * mask[:, i]
            seq_ends = mask.long().sum(dim=1) - 1
            last_tags = tags.gather(1, seq_ends.unsqueeze(1)).squeeze(1)
            return score + self.end_transitions[last_tags]

        def _compute_normalizer(self, emissions, mask):
            score = self.start_transitions + emissions[:, 0]
            for i in range(1, emissions.size(1)):
                broadcast_score = score.unsqueeze(2)
                broadcast_emissions = emissions[:, i].unsqueeze(1)
                next_score = broadcast_score + self.transitions + broadcast_emissions
                next_score = T.logsumexp(next_score, dim=1)
                score = T.where(mask[:, i].unsqueeze(1), next_score, score)
            score += self.end_transitions
            return T.logsumexp(score, dim=1)

        def decode(self, emissions, mask):
            batch_size, seq_length = mask.shape
            score = self.start_transitions + emissions[:, 0]
            history = []
            for i in range(1, seq_length):
                next_score = score.unsqueeze(2) + self.transitions + emissions[:, i].unsqueeze(1)
                next_score, indices = next_score.max(dim=1)
                score = T.where(mask[:, i].unsqueeze(1), next_score, score)
                history.append(indices)
            score += self.end_transitions
            seq_ends = mask.long().sum(dim=1) - 1
            best_tags_list = []
            for idx in range(batch_size):
                _, best_last_tag = score[idx].max(dim=0)
                best_tags = [best_last_tag.item()]
                for hist in reversed(history[:seq_ends[idx]]):
                    best_last_tag = hist[idx][best_tags[-1]]
                    best_tags.append(best_last_tag.item())
                best_tags.reverse()
                best_tags_list.append(best_tags)
            return best_tags_list

    return CRF()


def train_batched_crf(T, device, init, emissions, tags, lengths):
    device = device_of(T, device)
    crf = ported_model(T, batched_crf, init, device)
    emissions = T.tensor(emissions, device=device, requires_grad=True)
    tags = T.tensor(tags, device=device)
    mask = T.arange(tags.size(1), device=device)[None, :] < T.tensor(lengths, device=device)[:, None]
    optimizer = T.optim.Adam(list(crf.parameters()) + [emissions], lr=0.05)
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        loss = crf(emissions, tags, mask)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with T.no_grad():
        paths = crf.decode(emissions, mask)
    state = numpy_state(crf)
    state["emissions"] = emissions.detach().cpu().numpy()
    return losses + [t for p in paths for t in p], state


def test_batched_crf(device):
    rng = np.random.default_rng(3)
    emissions = rng.standard_normal((3, 5, 4)).astype(np.float32)
    tags, lengths = rng.integers(0, 4, (3, 5)), np.array([5, 3, 1])
    torch.manual_seed(0)
    run_both(train_batched_crf, device, numpy_state(batched_crf(torch)), emissions, tags, lengths)


# ---- 4. attention pooling over packed / padded sequences ------------------------------------------------

def attention_classifier(T, vocab=12, dim=6, hidden=5, classes=3):
    nn, F = T.nn, T.nn.functional

    class Attention(nn.Module):
        def __init__(self, hidden_dim):
            super().__init__()
            self.attn = nn.Linear(hidden_dim, hidden_dim)
            self.v = nn.Linear(hidden_dim, 1, bias=False)

        def forward(self, outputs, mask):
            energy = self.v(T.tanh(self.attn(outputs))).squeeze(2)   # (B, L)
            energy = energy.masked_fill(mask == 0, -1e9)
            weights = F.softmax(energy, dim=1)
            context = T.bmm(weights.unsqueeze(1), outputs).squeeze(1)  # (B, H2)
            return context, weights

    class AttnBiGRU(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(vocab, dim, padding_idx=0)
            self.rnn = nn.GRU(dim, hidden, batch_first=True, bidirectional=True)
            self.attention = Attention(2 * hidden)
            self.fc = nn.Linear(2 * hidden, classes)

        def forward(self, text, text_lengths):
            embedded = self.embedding(text)
            packed = nn.utils.rnn.pack_padded_sequence(embedded, text_lengths.to("cpu"), batch_first=True,
                                                       enforce_sorted=False)
            packed_output, hidden = self.rnn(packed)
            output, output_lengths = nn.utils.rnn.pad_packed_sequence(packed_output, batch_first=True)
            mask = (text[:, :output.size(1)] != 0)
            context, weights = self.attention(output, mask)
            return self.fc(context), weights

    return AttnBiGRU()


def train_attention(T, device, init, text, lengths, labels):
    device = device_of(T, device)
    model = ported_model(T, attention_classifier, init, device)
    optimizer = T.optim.Adam(model.parameters(), lr=0.01)
    criterion = T.nn.CrossEntropyLoss()
    text, lengths, labels = T.tensor(text, device=device), T.tensor(lengths), T.tensor(labels, device=device)
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        predictions, weights = model(text, lengths)
        loss = criterion(predictions, labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # padded positions get no attention, and each row's weights sum to one
    assert (weights.detach()[T.arange(text.size(1), device=device)[None, :] >= lengths.to(device)[:, None]]
            == 0).all().item()
    losses += weights.sum(1).tolist()
    return losses, numpy_state(model)


def test_attention_pooling_packed(device):
    rng = np.random.default_rng(4)
    lengths = np.array([3, 6, 2, 5])
    text = rng.integers(1, 12, (4, 6)) * (np.arange(6) < lengths[:, None])
    torch.manual_seed(0)
    run_both(train_attention, device, numpy_state(attention_classifier(torch)), text, lengths, rng.integers(0, 3, 4))


# ---- 5. fastText-style classification with EmbeddingBag and offsets -------------------------------------

def fasttext(T, vocab=16, dim=5, classes=3, mode="mean"):
    nn = T.nn

    class TextClassificationModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.EmbeddingBag(vocab, dim, sparse=False, mode=mode)
            self.fc = nn.Linear(dim, classes)
            self.init_weights()

        def init_weights(self):
            initrange = 0.5
            with T.no_grad():  # `self.embedding.weight.data.uniform_(...)` there: .data is the raw array (README)
                self.embedding.weight.uniform_(-initrange, initrange)
                self.fc.weight.uniform_(-initrange, initrange)
                self.fc.bias.zero_()

        def forward(self, text, offsets, per_sample_weights=None):
            embedded = self.embedding(text, offsets, per_sample_weights=per_sample_weights)
            return self.fc(embedded)

    return TextClassificationModel()


def train_fasttext(T, device, init, batch, mode, weighted):
    device = device_of(T, device)
    model = ported_model(T, lambda T: fasttext(T, mode=mode), init, device)
    criterion = T.nn.CrossEntropyLoss()
    optimizer = T.optim.SGD(model.parameters(), lr=5)
    scheduler = T.optim.lr_scheduler.StepLR(optimizer, 1.0, gamma=0.1)

    def collate_batch(batch):
        label_list, text_list, offsets = [], [], [0]
        for _label, _text in batch:
            label_list.append(_label)
            processed_text = T.tensor(_text, dtype=T.int64)
            text_list.append(processed_text)
            offsets.append(processed_text.size(0))
        label_list = T.tensor(label_list, dtype=T.int64)
        offsets = T.tensor(offsets[:-1]).cumsum(dim=0)
        text_list = T.cat(text_list)
        return label_list.to(device), text_list.to(device), offsets.to(device)

    label, text, offsets = collate_batch(batch)
    weights = T.linspace(0.5, 1.5, len(text), device=device) if weighted else None
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        predicted_label = model(text, offsets, weights)
        loss = criterion(predicted_label, label)
        loss.backward()
        T.nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        losses.append((predicted_label.argmax(1) == label).sum().item())
    return losses, numpy_state(model)


@pytest.mark.parametrize("mode,weighted", [("mean", False), ("sum", False), ("sum", True), ("max", False)])
def test_fasttext_embedding_bag(device, mode, weighted):
    rng = np.random.default_rng(5)
    batch = [(int(rng.integers(0, 3)), rng.integers(0, 16, n)) for n in (3, 1, 5, 2)]
    torch.manual_seed(0)
    run_both(train_fasttext, device, numpy_state(fasttext(torch, mode=mode)), batch, mode, weighted)


# ---- 6. matrix factorization with biases; BPR with sampled negatives ------------------------------------

def matrix_factorization(T, n_users=7, n_items=9, dim=4):
    nn = T.nn

    class MatrixFactorization(nn.Module):
        def __init__(self):
            super().__init__()
            self.user_factors = nn.Embedding(n_users, dim)
            self.item_factors = nn.Embedding(n_items, dim)
            self.user_biases = nn.Embedding(n_users, 1)
            self.item_biases = nn.Embedding(n_items, 1)
            self.global_bias = nn.Parameter(T.zeros(1))
            with T.no_grad():  # `self.user_factors.weight.data.normal_(0, 0.1)` there (README: .data)
                self.user_factors.weight.normal_(0, 0.1)
                self.item_factors.weight.normal_(0, 0.1)
                self.user_biases.weight.zero_()
                self.item_biases.weight.zero_()

        def forward(self, user, item):
            pred = self.global_bias + self.user_biases(user).squeeze(1) + self.item_biases(item).squeeze(1)
            pred += (self.user_factors(user) * self.item_factors(item)).sum(1, keepdim=False)
            return pred

    return MatrixFactorization()


def train_mf(T, device, init, users, items, ratings):
    device = device_of(T, device)
    model = ported_model(T, matrix_factorization, init, device)
    loss_func = T.nn.MSELoss()
    optimizer = T.optim.Adagrad(model.parameters(), lr=0.1, weight_decay=1e-4)
    dataset = T.utils.data.TensorDataset(T.from_numpy(users), T.from_numpy(items), T.from_numpy(ratings))
    pairs, repeats = T.unique(T.stack([T.from_numpy(users), T.from_numpy(items)], dim=1), dim=0, return_counts=True)
    losses = [len(pairs), repeats.max().item(), pairs[:, 0].sum().item()]
    for epoch in range(2):
        for user, item, rating in T.utils.data.DataLoader(dataset, batch_size=6):
            user, item, rating = user.to(device), item.to(device), rating.to(device)
            prediction = model(user, item)
            loss = loss_func(prediction, rating)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    with T.no_grad():
        rmse = T.sqrt(loss_func(model(T.from_numpy(users).to(device), T.from_numpy(items).to(device)),
                                T.from_numpy(ratings).to(device)))
    return losses + [rmse.item()], numpy_state(model)


def test_matrix_factorization(device):
    rng = np.random.default_rng(6)
    users, items = rng.integers(0, 4, 18), rng.integers(0, 3, 18)  # some (user, item) pairs repeat
    ratings = rng.integers(1, 6, 18).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_mf, device, numpy_state(matrix_factorization(torch)), users, items, ratings)


def bpr_mf(T, n_users=6, n_items=10, dim=4):
    nn = T.nn

    class BPR(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_user = nn.Embedding(n_users, dim)
            self.embed_item = nn.Embedding(n_items, dim)
            nn.init.normal_(self.embed_user.weight, std=0.01)
            nn.init.normal_(self.embed_item.weight, std=0.01)

        def forward(self, user, item_i, item_j):
            user = self.embed_user(user)
            item_i = self.embed_item(item_i)
            item_j = self.embed_item(item_j)
            prediction_i = (user * item_i).sum(dim=-1)
            prediction_j = (user * item_j).sum(dim=-1)
            return prediction_i, prediction_j

    return BPR()


def train_bpr(T, device, init, triples, lamb=1e-3):
    device = device_of(T, device)
    model = ported_model(T, bpr_mf, init, device)
    F = T.nn.functional
    optimizer = T.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for user, item_i, item_j in triples:
        user, item_i, item_j = (T.tensor(a, device=device) for a in (user, item_i, item_j))
        model.zero_grad()
        prediction_i, prediction_j = model(user, item_i, item_j)
        reg = lamb * (model.embed_user(user).norm(dim=1).pow(2).sum() + model.embed_item(item_i).norm(2).pow(2))
        loss = -F.logsigmoid(prediction_i - prediction_j).mean() + reg
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, numpy_state(model)


def test_bpr(device):
    rng = np.random.default_rng(7)
    triples = [(rng.integers(0, 6, 5), rng.integers(0, 5, 5), rng.integers(5, 10, 5)) for _ in range(4)]
    torch.manual_seed(0)
    run_both(train_bpr, device, numpy_state(bpr_mf(torch)), triples)


# ---- 7. NeuMF: GMF and MLP towers, concatenated -----------------------------------------------------------

def neumf(T, user_num=6, item_num=8, factor_num=4, num_layers=2):
    nn = T.nn

    class NCF(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_user_GMF = nn.Embedding(user_num, factor_num)
            self.embed_item_GMF = nn.Embedding(item_num, factor_num)
            self.embed_user_MLP = nn.Embedding(user_num, factor_num * (2 ** (num_layers - 1)))
            self.embed_item_MLP = nn.Embedding(item_num, factor_num * (2 ** (num_layers - 1)))
            MLP_modules = []
            for i in range(num_layers):
                input_size = factor_num * (2 ** (num_layers - i))
                MLP_modules.append(nn.Dropout(p=0.0))
                MLP_modules.append(nn.Linear(input_size, input_size // 2))
                MLP_modules.append(nn.ReLU())
            self.MLP_layers = nn.Sequential(*MLP_modules)
            self.predict_layer = nn.Linear(factor_num * 2, 1)
            nn.init.normal_(self.embed_user_GMF.weight, std=0.01)
            nn.init.normal_(self.embed_user_MLP.weight, std=0.01)
            nn.init.normal_(self.embed_item_GMF.weight, std=0.01)
            nn.init.normal_(self.embed_item_MLP.weight, std=0.01)
            for m in self.MLP_layers:
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
            nn.init.kaiming_uniform_(self.predict_layer.weight, a=1, nonlinearity='sigmoid')
            for m in self.modules():
                if isinstance(m, nn.Linear) and m.bias is not None:
                    nn.init.zeros_(m.bias)  # `m.bias.data.zero_()` there (README: .data is the raw array)

        def forward(self, user, item):
            output_GMF = self.embed_user_GMF(user) * self.embed_item_GMF(item)
            interaction = T.cat((self.embed_user_MLP(user), self.embed_item_MLP(item)), -1)
            output_MLP = self.MLP_layers(interaction)
            concat = T.cat((output_GMF, output_MLP), -1)
            prediction = self.predict_layer(concat)
            return prediction.view(-1)

    return NCF()


def train_neumf(T, device, init, users, items, labels):
    device = device_of(T, device)
    model = ported_model(T, neumf, init, device)
    loss_function = T.nn.BCEWithLogitsLoss()
    optimizer = T.optim.Adam(model.parameters(), lr=0.01)
    user, item, label = T.tensor(users, device=device), T.tensor(items, device=device), T.tensor(labels, device=device)
    losses = []
    model.train()
    for _ in range(4):
        model.zero_grad()
        prediction = model(user, item)
        loss = loss_function(prediction, label.float())
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, numpy_state(model)


def test_neumf(device):
    rng = np.random.default_rng(8)
    torch.manual_seed(0)
    run_both(train_neumf, device, numpy_state(neumf(torch)), rng.integers(0, 6, 10), rng.integers(0, 8, 10),
             rng.integers(0, 2, 10))


# ---- 8. Wide & Deep over one-hot / multi-hot features -------------------------------------------------

def wide_deep(T, wide_dim=12, n_cat=(5, 4), emb_dim=3, n_cont=2):
    nn = T.nn

    class WideDeep(nn.Module):
        def __init__(self):
            super().__init__()
            self.wide = nn.Linear(wide_dim, 1)
            self.embeddings = nn.ModuleList([nn.Embedding(n, emb_dim) for n in n_cat])
            self.deep = nn.Sequential(nn.Linear(len(n_cat) * emb_dim + n_cont, 8), nn.ReLU(),
                                      nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 1))

        def forward(self, X_w, X_cat, X_cont):
            emb = [e(X_cat[:, i]) for i, e in enumerate(self.embeddings)]
            deep_inp = T.cat(emb + [X_cont], 1)
            out = self.wide(X_w) + self.deep(deep_inp)
            return T.sigmoid(out)

    return WideDeep()


def train_wide_deep(T, device, init, wide_idx, cats, conts, targets):
    device = device_of(T, device)
    model = ported_model(T, wide_deep, init, device)
    F = T.nn.functional
    optimizer = T.optim.Adam([{"params": model.wide.parameters(), "lr": 0.05},
                              {"params": list(model.embeddings.parameters()) + list(model.deep.parameters())}],
                             lr=0.01)
    # multi-hot wide features: cross-product columns, one_hot summed over each row's active ids
    wide_idx = T.tensor(wide_idx, device=device)
    X_w = F.one_hot(wide_idx, num_classes=12).sum(1).clamp(max=1).float()
    X_cat, X_cont = T.tensor(cats, device=device), T.tensor(conts, device=device)
    y = T.tensor(targets, device=device).view(-1, 1)
    losses = []
    for _ in range(4):
        optimizer.zero_grad()
        y_pred = model(X_w, X_cat, X_cont)
        loss = F.binary_cross_entropy(y_pred, y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with T.no_grad():
        acc = ((model(X_w, X_cat, X_cont) > 0.5).float() == y).float().mean()
    return losses + [acc.item()], numpy_state(model)


def test_wide_and_deep(device):
    rng = np.random.default_rng(9)
    n = 10
    wide_idx = rng.integers(0, 12, (n, 3))
    cats = np.stack([rng.integers(0, 5, n), rng.integers(0, 4, n)], 1)
    conts = rng.standard_normal((n, 2)).astype(np.float32)
    targets = rng.integers(0, 2, n).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_wide_deep, device, numpy_state(wide_deep(torch)), wide_idx, cats, conts, targets)


# ---- 9. DLRM: bottom MLP, embeddings, pairwise dot interactions, top MLP ---------------------------------

def dlrm(T, m_spa=3, ln_emb=(6, 5, 4), ln_bot=(4, 5, 3), interaction_itself=False):
    nn = T.nn

    class DLRM_Net(nn.Module):
        def create_mlp(self, ln, sigmoid_layer):
            layers = nn.ModuleList()
            for i in range(0, len(ln) - 1):
                n, m = int(ln[i]), int(ln[i + 1])
                LL = nn.Linear(n, m, bias=True)
                mean, std_dev = 0.0, np.sqrt(2 / (m + n))
                W = np.random.default_rng(i).normal(mean, std_dev, size=(m, n)).astype(np.float32)
                std_dev = np.sqrt(1 / m)
                bt = np.random.default_rng(10 + i).normal(mean, std_dev, size=m).astype(np.float32)
                LL.weight.data = T.tensor(W, requires_grad=True)
                LL.bias.data = T.tensor(bt, requires_grad=True)
                layers.append(LL)
                layers.append(nn.Sigmoid() if i == sigmoid_layer else nn.ReLU())
            return nn.Sequential(*layers)

        def create_emb(self, m, ln):
            emb_l = nn.ModuleList()
            for i in range(0, len(ln)):
                n = ln[i]
                EE = nn.EmbeddingBag(n, m, mode="sum", sparse=False)
                W = np.random.default_rng(20 + i).uniform(low=-np.sqrt(1 / n), high=np.sqrt(1 / n),
                                                          size=(n, m)).astype(np.float32)
                EE.weight.data = T.tensor(W, requires_grad=True)
                emb_l.append(EE)
            return emb_l

        def __init__(self):
            super().__init__()
            num_fea = len(ln_emb) + 1
            num_int = (num_fea * (num_fea + 1)) // 2 if interaction_itself else (num_fea * (num_fea - 1)) // 2
            num_int += m_spa
            self.offset = 1 if interaction_itself else 0
            self.bot_l = self.create_mlp(ln_bot, -1)
            self.emb_l = self.create_emb(m_spa, ln_emb)
            self.top_l = self.create_mlp((num_int, 4, 1), 1)

        def apply_emb(self, lS_o, lS_i):
            return [E(lS_i[k], lS_o[k]) for k, E in enumerate(self.emb_l)]

        def interact_features(self, x, ly):
            (batch_size, d) = x.shape
            T_ = T.cat([x] + ly, dim=1).view((batch_size, -1, d))
            Z = T.bmm(T_, T.transpose(T_, 1, 2))
            _, ni, nj = Z.shape
            li = T.tensor([i for i in range(ni) for j in range(i + self.offset)], device=x.device)
            lj = T.tensor([j for i in range(nj) for j in range(i + self.offset)], device=x.device)
            Zflat = Z[:, li, lj]
            return T.cat([x] + [Zflat], dim=1)

        def forward(self, dense_x, lS_o, lS_i):
            x = self.bot_l(dense_x)
            ly = self.apply_emb(lS_o, lS_i)
            z = self.interact_features(x, ly)
            return self.top_l(z)

    return DLRM_Net()


def train_dlrm(T, device, init, dense, offsets, indices, targets):
    device = device_of(T, device)
    model = ported_model(T, dlrm, init, device)
    loss_fn = T.nn.BCELoss(reduction="mean")
    optimizer = T.optim.SGD(model.parameters(), lr=0.1)
    X = T.tensor(dense, device=device)
    lS_o = [T.tensor(o, device=device) for o in offsets]
    lS_i = [T.tensor(i, device=device) for i in indices]
    y = T.tensor(targets, device=device).view(-1, 1)
    losses = []
    for _ in range(3):
        Z = model(X, lS_o, lS_i)
        E = loss_fn(Z, y)
        optimizer.zero_grad()
        E.backward()
        optimizer.step()
        losses.append(E.item())
    return losses, numpy_state(model)


def test_dlrm(device):
    rng = np.random.default_rng(10)
    B = 5
    offsets, indices = [], []
    for n in (6, 5, 4):
        lengths = rng.integers(1, 4, B)
        offsets.append(np.concatenate([[0], np.cumsum(lengths)[:-1]]))
        indices.append(rng.integers(0, n, lengths.sum()))
    dense = rng.standard_normal((B, 4)).astype(np.float32)
    targets = rng.integers(0, 2, B).astype(np.float32)
    torch.manual_seed(0)
    run_both(train_dlrm, device, numpy_state(dlrm(torch)), dense, offsets, indices, targets)


def interactions(T, device, x):
    """DLRM's interaction by triu_indices / tril_indices (offset -1: strictly below the diagonal)."""
    device = device_of(T, device)
    x = T.tensor(x, device=device, requires_grad=True)
    Z = T.bmm(x, x.transpose(1, 2))
    n = x.size(1)
    li, lj = T.tril_indices(n, n, offset=-1, device=device)
    ui, uj = T.triu_indices(n, n, offset=1, device=device)
    lower, upper = Z[:, li, lj], Z[:, ui, uj]
    out = T.cat([lower, upper.flip(1)], dim=1)
    (out * T.arange(out.size(1), device=device)).sum().backward()
    return out.detach().cpu().numpy().ravel().tolist(), {"grad": x.grad.cpu().numpy()}


def test_dlrm_triangular_interactions(device):
    x = np.random.default_rng(11).standard_normal((3, 4, 5)).astype(np.float32)
    run_both(interactions, device, x)


# ---- 10. DCN cross layers and a factorization machine ---------------------------------------------------

def dcn(T, n_fields=3, vocab=6, emb=2, n_dense=2, num_layers=2):
    nn = T.nn

    class CrossNetwork(nn.Module):
        def __init__(self, in_features, layer_num):
            super().__init__()
            self.layer_num = layer_num
            self.kernels = nn.Parameter(T.Tensor(self.layer_num, in_features, 1))
            self.bias = nn.Parameter(T.Tensor(self.layer_num, in_features, 1))
            for i in range(self.kernels.shape[0]):
                nn.init.xavier_normal_(self.kernels[i])
            for i in range(self.bias.shape[0]):
                nn.init.zeros_(self.bias[i])

        def forward(self, inputs):
            x_0 = inputs.unsqueeze(2)
            x_l = x_0
            for i in range(self.layer_num):
                xl_w = T.tensordot(x_l, self.kernels[i], dims=([1], [0]))
                dot_ = T.matmul(x_0, xl_w)
                x_l = dot_ + self.bias[i] + x_l
            return T.squeeze(x_l, dim=2)

    class CrossLayer(nn.Module):
        """The other common form: x0 * (x @ w) + b + x with a Linear(d, 1)."""

        def __init__(self, d):
            super().__init__()
            self.w = nn.Linear(d, 1, bias=False)
            self.b = nn.Parameter(T.zeros(d))

        def forward(self, x0, x):
            return x0 * self.w(x) + self.b + x

    class DCN(nn.Module):
        def __init__(self):
            super().__init__()
            d = n_fields * emb + n_dense
            self.embedding = nn.Embedding(n_fields * vocab, emb)
            self.register_buffer("offsets", T.arange(n_fields) * vocab)
            self.cross = CrossNetwork(d, num_layers)
            self.cross_layers = nn.ModuleList([CrossLayer(d) for _ in range(num_layers)])
            self.deep = nn.Sequential(nn.Linear(d, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU())
            self.head = nn.Linear(2 * d + 6, 1)

        def forward(self, sparse, dense):
            e = self.embedding(sparse + self.offsets).flatten(1)
            x0 = T.cat([e, dense], dim=1)
            x = x0
            for layer in self.cross_layers:
                x = layer(x0, x)
            return self.head(T.cat([self.cross(x0), x, self.deep(x0)], dim=-1)).squeeze(-1)

    return DCN()


def train_dcn(T, device, init, sparse, dense, y):
    device = device_of(T, device)
    model = ported_model(T, dcn, init, device)
    optimizer = T.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-5)
    sparse, dense, y = T.tensor(sparse, device=device), T.tensor(dense, device=device), T.tensor(y, device=device)
    losses = []
    for _ in range(4):
        optimizer.zero_grad()
        loss = T.nn.functional.binary_cross_entropy_with_logits(model(sparse, dense), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, numpy_state(model)


def test_deep_and_cross_network(device):
    rng = np.random.default_rng(12)
    torch.manual_seed(0)
    run_both(train_dcn, device, numpy_state(dcn(torch)), rng.integers(0, 6, (8, 3)),
             rng.standard_normal((8, 2)).astype(np.float32), rng.integers(0, 2, 8).astype(np.float32))


def factorization_machine(T, field_dims=(4, 5, 3), embed_dim=3):
    nn = T.nn

    class FeaturesLinear(nn.Module):
        def __init__(self, output_dim=1):
            super().__init__()
            self.fc = nn.Embedding(sum(field_dims), output_dim)
            self.bias = nn.Parameter(T.zeros((output_dim,)))
            self.offsets = np.array((0, *np.cumsum(field_dims)[:-1]), dtype=np.int64)

        def forward(self, x):
            x = x + x.new_tensor(self.offsets).unsqueeze(0)
            return T.sum(self.fc(x), dim=1) + self.bias

    class FeaturesEmbedding(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(sum(field_dims), embed_dim)
            self.offsets = np.array((0, *np.cumsum(field_dims)[:-1]), dtype=np.int64)
            nn.init.xavier_uniform_(self.embedding.weight)  # `.weight.data` there (README: .data)

        def forward(self, x):
            x = x + x.new_tensor(self.offsets).unsqueeze(0)
            return self.embedding(x)

    class FactorizationMachine(nn.Module):
        def __init__(self, reduce_sum=True):
            super().__init__()
            self.reduce_sum = reduce_sum

        def forward(self, x):
            square_of_sum = T.sum(x, dim=1) ** 2
            sum_of_square = T.sum(x ** 2, dim=1)
            ix = square_of_sum - sum_of_square
            if self.reduce_sum:
                ix = T.sum(ix, dim=1, keepdim=True)
            return 0.5 * ix

    class FactorizationMachineModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = FeaturesEmbedding()
            self.linear = FeaturesLinear()
            self.fm = FactorizationMachine(reduce_sum=True)

        def forward(self, x):
            x = self.linear(x) + self.fm(self.embedding(x))
            return T.sigmoid(x.squeeze(1))

    return FactorizationMachineModel()


def train_fm(T, device, init, fields, target):
    device = device_of(T, device)
    model = ported_model(T, factorization_machine, init, device)
    criterion = T.nn.BCELoss()
    optimizer = T.optim.Adam(params=model.parameters(), lr=0.05, weight_decay=1e-6)
    fields, target = T.tensor(fields, device=device), T.tensor(target, device=device)
    losses = []
    for _ in range(4):
        y = model(fields)
        loss = criterion(y, target.float())
        model.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, numpy_state(model)


def test_factorization_machine(device):
    rng = np.random.default_rng(13)
    fields = np.stack([rng.integers(0, n, 9) for n in (4, 5, 3)], 1)
    torch.manual_seed(0)
    run_both(train_fm, device, numpy_state(factorization_machine(torch)), fields, rng.integers(0, 2, 9))


# ---- 11. two-tower retrieval: in-batch negatives, sampled softmax, HR@k and NDCG@k ------------------------

def two_tower(T, n_users=8, n_items=12, dim=4):
    nn, F = T.nn, T.nn.functional

    class Tower(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.emb = nn.Embedding(n, dim)
            self.mlp = nn.Sequential(nn.Linear(dim, 6), nn.ReLU(), nn.Linear(6, dim))

        def forward(self, ids):
            return F.normalize(self.mlp(self.emb(ids)), dim=-1)

    class TwoTower(nn.Module):
        def __init__(self):
            super().__init__()
            self.query, self.item = Tower(n_users), Tower(n_items)
            self.log_temperature = nn.Parameter(T.tensor(np.log(1 / 0.2), dtype=T.float32))

        def forward(self, users, items):
            q, k = self.query(users), self.item(items)
            return q @ k.T * self.log_temperature.exp()

    return TwoTower()


def evaluate(T, model, users, pos, negs, k):
    """Leave-one-out ranking: each user's positive among its sampled negatives."""
    model.eval()
    with T.no_grad():
        items = T.cat([pos.unsqueeze(1), negs], dim=1)                       # (B, 1 + N), positive first
        q = model.query(users)
        scores = (q.unsqueeze(1) * model.item(items)).sum(-1)                 # (B, 1 + N)
        _, topk = T.topk(scores, k, dim=1)
        hits = (topk == 0)
        hr = hits.any(dim=1).float().mean()
        discounts = 1.0 / T.log2(T.arange(2, k + 2, device=scores.device).float())
        ndcg = (hits.float() * discounts).sum(1).mean()
        rank = (scores > scores[:, :1]).sum(1)
        mrr = (1.0 / (rank + 1).float()).mean()
    model.train()
    return [hr.item(), ndcg.item(), mrr.item()]


def train_two_tower(T, device, init, batches, eval_negs, k=3):
    device = device_of(T, device)
    model = ported_model(T, two_tower, init, device)
    F = T.nn.functional
    optimizer = T.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for users, items, neg in batches:
        users, items, neg = (T.tensor(a, device=device) for a in (users, items, neg))
        logits = model(users, items)                                          # in-batch negatives
        labels = T.arange(logits.size(0), device=device)
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2
        # sampled softmax over shared random negatives, logQ-corrected
        neg_logits = model.query(users) @ model.item(neg).T * model.log_temperature.exp()
        pos_logits = logits.diagonal().unsqueeze(1)
        sampled = T.cat([pos_logits, neg_logits - np.log(neg.numel())], dim=1)
        loss = loss + F.cross_entropy(sampled, T.zeros(sampled.size(0), dtype=T.long, device=device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    users, pos, negs = (T.tensor(a, device=device) for a in eval_negs)
    return losses + evaluate(T, model, users, pos, negs, k), numpy_state(model)


def test_two_tower_in_batch_negatives_and_ranking_metrics(device):
    rng = np.random.default_rng(14)
    batches = [(rng.permutation(8)[:5], rng.permutation(12)[:5], rng.integers(0, 12, 4)) for _ in range(4)]
    # distinct items per user, so that no two candidates tie (topk orders ties as it likes)
    candidates = np.stack([rng.permutation(12)[:7] for _ in range(8)])
    eval_negs = (np.arange(8), candidates[:, 0], candidates[:, 1:])
    torch.manual_seed(0)
    run_both(train_two_tower, device, numpy_state(two_tower(torch)), batches, eval_negs)


# ---- 12. CBOW with a max_norm embedding; Kim's multichannel TextCNN with a frozen pretrained channel -------

def cbow(T, vocab=14, dim=5, scale_grad_by_freq=False):
    nn = T.nn

    class CBOW_Model(nn.Module):
        def __init__(self, vocab_size):
            super().__init__()
            self.embeddings = nn.Embedding(num_embeddings=vocab_size, embedding_dim=dim, max_norm=1,
                                           scale_grad_by_freq=scale_grad_by_freq)
            self.linear = nn.Linear(in_features=dim, out_features=vocab_size)

        def forward(self, inputs_):
            x = self.embeddings(inputs_)
            x = x.mean(axis=1)
            return self.linear(x)

    return CBOW_Model(vocab)


def train_cbow(T, device, init, contexts, targets, scale_grad_by_freq):
    device = device_of(T, device)
    model = ported_model(T, lambda T: cbow(T, scale_grad_by_freq=scale_grad_by_freq), init, device)
    criterion = T.nn.CrossEntropyLoss()
    optimizer = T.optim.Adam(model.parameters(), lr=0.025)
    lr_scheduler = T.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=lambda epoch: (4 - epoch) / 4)
    losses = []
    for inputs, labels in zip(contexts, targets):
        inputs, labels = T.tensor(inputs, device=device), T.tensor(labels, device=device)
        optimizer.zero_grad()
        outputs = model(inputs)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        lr_scheduler.step()
        losses.append(loss.item())
    norms = model.embeddings.weight.detach().norm(dim=1)
    losses += norms.tolist()
    return losses, numpy_state(model)


@pytest.mark.parametrize("scale_grad_by_freq", [False, True])
def test_cbow_max_norm(device, scale_grad_by_freq):
    rng = np.random.default_rng(15)
    contexts, targets = rng.integers(0, 14, (4, 6, 4)), rng.integers(0, 14, (4, 6))
    torch.manual_seed(0)
    run_both(train_cbow, device, numpy_state(cbow(torch)), contexts, targets, scale_grad_by_freq)


def multichannel_textcnn(T, pretrained, classes=2, Ks=(2, 3), Co=3):
    nn, F = T.nn, T.nn.functional

    class KimCNN(nn.Module):
        def __init__(self):
            super().__init__()
            vectors = T.from_numpy(pretrained)
            V, D = vectors.shape
            self.static = nn.Embedding.from_pretrained(vectors, freeze=True, padding_idx=0)
            self.non_static = nn.Embedding.from_pretrained(vectors.clone(), freeze=False, padding_idx=0)
            self.convs = nn.ModuleList([nn.Conv2d(2, Co, (K, D)) for K in Ks])
            self.dropout = nn.Dropout(0.0)
            self.fc = nn.Linear(len(Ks) * Co, classes)

        def forward(self, x):
            x = T.stack([self.static(x), self.non_static(x)], dim=1)                # (N, 2, W, D)
            x = [F.relu(conv(x)).squeeze(3) for conv in self.convs]
            x = [F.max_pool1d(i, i.size(2)).squeeze(2) for i in x]
            return self.fc(self.dropout(T.cat(x, 1)))

    return KimCNN()


def train_multichannel(T, device, init, pretrained, tokens, labels):
    device = device_of(T, device)
    model = ported_model(T, lambda T: multichannel_textcnn(T, pretrained), init, device)
    assert not model.static.weight.requires_grad and model.non_static.weight.requires_grad
    optimizer = T.optim.Adadelta(filter(lambda p: p.requires_grad, model.parameters()), lr=1.0, rho=0.95)
    x, y = T.tensor(tokens, device=device), T.tensor(labels, device=device)
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        loss = T.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        T.nn.utils.clip_grad_norm_(model.parameters(), 3.0)
        optimizer.step()
        losses.append(loss.item())
    return losses, numpy_state(model)


def test_kim_multichannel_textcnn(device):
    rng = np.random.default_rng(16)
    pretrained = rng.standard_normal((12, 4)).astype(np.float32)
    tokens = rng.integers(0, 12, (5, 7))
    tokens[:, 5:] = 0
    torch.manual_seed(0)
    init = numpy_state(multichannel_textcnn(torch, pretrained))
    run_both(train_multichannel, device, init, pretrained, tokens, rng.integers(0, 2, 5))


# ---- 13. packed BiLSTM sentiment (sorted batch, pad_sequence, final hidden states of both directions) -------

def rnn_sentiment(T, vocab=12, dim=5, hidden=4, pad_idx=1):
    nn = T.nn

    class RNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(vocab, dim, padding_idx=pad_idx)
            self.rnn = nn.LSTM(dim, hidden, num_layers=2, bidirectional=True, dropout=0.0)
            self.fc = nn.Linear(hidden * 2, 1)
            self.dropout = nn.Dropout(0.0)

        def forward(self, text, text_lengths):
            embedded = self.dropout(self.embedding(text))                       # (L, B, D)
            packed_embedded = nn.utils.rnn.pack_padded_sequence(embedded, text_lengths.to('cpu'))
            packed_output, (hidden, cell) = self.rnn(packed_embedded)
            output, output_lengths = nn.utils.rnn.pad_packed_sequence(packed_output)
            hidden = self.dropout(T.cat((hidden[-2, :, :], hidden[-1, :, :]), dim=1))
            return self.fc(hidden), output

    return RNN()


def train_sentiment(T, device, init, sentences, labels):
    device = device_of(T, device)
    model = ported_model(T, rnn_sentiment, init, device)
    optimizer = T.optim.Adam(model.parameters())
    criterion = T.nn.BCEWithLogitsLoss()
    # BucketIterator's sort_within_batch: longest first, as pack_padded_sequence expects by default
    lengths = T.tensor([len(s) for s in sentences])
    lengths, perm_idx = lengths.sort(0, descending=True)
    seqs = [T.tensor(sentences[i]) for i in perm_idx.tolist()]
    text = T.nn.utils.rnn.pad_sequence(seqs, padding_value=1).to(device)
    label = T.tensor(labels, dtype=T.float32)[perm_idx].to(device)

    def binary_accuracy(preds, y):
        rounded_preds = T.round(T.sigmoid(preds))
        correct = (rounded_preds == y).float()
        return correct.sum() / len(correct)

    losses = []
    model.train()
    for _ in range(3):
        optimizer.zero_grad()
        predictions, output = model(text, lengths)
        predictions = predictions.squeeze(1)
        loss = criterion(predictions, label)
        acc = binary_accuracy(predictions, label)
        loss.backward()
        optimizer.step()
        losses += [loss.item(), acc.item()]
    _, unperm_idx = perm_idx.sort(0)
    losses += output.index_select(1, unperm_idx.to(device)).sum(dim=(0, 2)).tolist()
    return losses, numpy_state(model)


def test_packed_bilstm_sentiment(device):
    rng = np.random.default_rng(17)
    sentences = [rng.integers(2, 12, n) for n in (4, 7, 2, 5)]
    torch.manual_seed(0)
    run_both(train_sentiment, device, numpy_state(rnn_sentiment(torch)), sentences, rng.integers(0, 2, 4))


# ---- 14. pairwise hinge and cosine losses; recall@k and MAP-style metrics from scatter / isin / argsort ------

def train_hinge_recsys(T, device, init, users, pos, neg, k=3):
    device = device_of(T, device)
    model = ported_model(T, bpr_mf, init, device)
    nn = T.nn
    optimizer = T.optim.Adagrad(model.parameters(), lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)
    margin_loss = nn.MarginRankingLoss(margin=0.5)
    cos_loss = nn.CosineEmbeddingLoss(margin=0.1)
    users, pos, neg = (T.tensor(a, device=device) for a in (users, pos, neg))
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        s_pos, s_neg = model(users, pos, neg)
        target = T.ones_like(s_pos)
        u = model.embed_user(users)
        loss = margin_loss(s_pos, s_neg, target) + cos_loss(
            T.cat([u, u]), T.cat([model.embed_item(pos), model.embed_item(neg)]),
            T.cat([target, -target]))
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with T.no_grad():
        scores = model.embed_user.weight @ model.embed_item.weight.t()          # (U, I)
        top = scores.topk(k, dim=1).indices
        pos_of_user = T.empty_like(pos).scatter_(0, users, pos)                # users is a permutation
        relevant = T.zeros_like(scores).scatter_(1, pos_of_user.view(-1, 1), 1.0)
        hits = relevant.gather(1, top)
        recall = (hits.sum(1) / relevant.sum(1).clamp(min=1)).mean()
        in_top = T.isin(pos, top[users]).float().mean()
        ranks = scores.argsort(dim=1, descending=True).argsort(dim=1)          # rank of every item
        pos_rank = ranks[users, pos].float()
        ap = (1.0 / (pos_rank + 1)).mean()
    return losses + [recall.item(), in_top.item(), ap.item()], numpy_state(model)


def test_hinge_and_cosine_losses_and_metrics(device):
    rng = np.random.default_rng(18)
    users = rng.permutation(6)
    pos, neg = rng.integers(0, 5, 6), rng.integers(5, 10, 6)
    torch.manual_seed(0)
    run_both(train_hinge_recsys, device, numpy_state(bpr_mf(torch)), users, pos, neg)


# ---- 15. SASRec: self-attentive sequential recommendation (causal MultiheadAttention, numpy-index loss) -----

def sasrec(T, item_num=10, maxlen=5, hidden_units=4, num_heads=2, num_blocks=2, dropout_rate=0.0):
    nn = T.nn

    class PointWiseFeedForward(nn.Module):
        def __init__(self, hidden_units, dropout_rate):
            super().__init__()
            self.conv1 = nn.Conv1d(hidden_units, hidden_units, kernel_size=1)
            self.dropout1 = nn.Dropout(p=dropout_rate)
            self.relu = nn.ReLU()
            self.conv2 = nn.Conv1d(hidden_units, hidden_units, kernel_size=1)
            self.dropout2 = nn.Dropout(p=dropout_rate)

        def forward(self, inputs):
            outputs = self.dropout2(self.conv2(self.relu(self.dropout1(self.conv1(inputs.transpose(-1, -2))))))
            outputs = outputs.transpose(-1, -2)  # as Conv1D requires (N, C, Length)
            outputs += inputs
            return outputs

    class SASRec(nn.Module):
        def __init__(self):
            super().__init__()
            self.item_num = item_num
            self.item_emb = nn.Embedding(self.item_num + 1, hidden_units, padding_idx=0)
            self.pos_emb = nn.Embedding(maxlen + 1, hidden_units, padding_idx=0)
            self.emb_dropout = nn.Dropout(p=dropout_rate)
            self.attention_layernorms = nn.ModuleList()
            self.attention_layers = nn.ModuleList()
            self.forward_layernorms = nn.ModuleList()
            self.forward_layers = nn.ModuleList()
            self.last_layernorm = nn.LayerNorm(hidden_units, eps=1e-8)
            for _ in range(num_blocks):
                self.attention_layernorms.append(nn.LayerNorm(hidden_units, eps=1e-8))
                # bias=False here only: softmax ignores the key bias (its gradient is exactly zero in exact
                # arithmetic), and Adam would blow that gradient's float noise up into real, differing steps
                self.attention_layers.append(nn.MultiheadAttention(hidden_units, num_heads, dropout_rate,
                                                                   bias=False))
                self.forward_layernorms.append(nn.LayerNorm(hidden_units, eps=1e-8))
                self.forward_layers.append(PointWiseFeedForward(hidden_units, dropout_rate))

        def log2feats(self, log_seqs):
            dev = self.item_emb.weight.device
            # `torch.LongTensor(log_seqs)` there: no typed constructors (README)
            seqs = self.item_emb(T.tensor(log_seqs, dtype=T.long).to(dev))
            seqs *= self.item_emb.embedding_dim ** 0.5
            poss = np.tile(np.arange(1, log_seqs.shape[1] + 1), [log_seqs.shape[0], 1])
            poss *= (log_seqs != 0)
            seqs += self.pos_emb(T.tensor(poss, dtype=T.long).to(dev))
            seqs = self.emb_dropout(seqs)
            tl = seqs.shape[1]
            attention_mask = ~T.tril(T.ones((tl, tl), dtype=T.bool, device=dev))
            for i in range(len(self.attention_layers)):
                seqs = T.transpose(seqs, 0, 1)
                Q = self.attention_layernorms[i](seqs)
                mha_outputs, _ = self.attention_layers[i](Q, seqs, seqs, attn_mask=attention_mask)
                seqs = Q + mha_outputs
                seqs = T.transpose(seqs, 0, 1)
                seqs = self.forward_layernorms[i](seqs)
                seqs = self.forward_layers[i](seqs)
            return self.last_layernorm(seqs)

        def forward(self, user_ids, log_seqs, pos_seqs, neg_seqs):
            dev = self.item_emb.weight.device
            log_feats = self.log2feats(log_seqs)
            pos_embs = self.item_emb(T.tensor(pos_seqs, dtype=T.long).to(dev))
            neg_embs = self.item_emb(T.tensor(neg_seqs, dtype=T.long).to(dev))
            pos_logits = (log_feats * pos_embs).sum(dim=-1)
            neg_logits = (log_feats * neg_embs).sum(dim=-1)
            return pos_logits, neg_logits

        def predict(self, user_ids, log_seqs, item_indices):
            log_feats = self.log2feats(log_seqs)
            final_feat = log_feats[:, -1, :]
            item_embs = self.item_emb(T.tensor(item_indices, dtype=T.long).to(self.item_emb.weight.device))
            return item_embs.matmul(final_feat.unsqueeze(-1)).squeeze(-1)

    return SASRec()


def train_sasrec(T, device, init, batches, test, l2_emb=1e-3):
    device = device_of(T, device)
    model = ported_model(T, sasrec, init, device)
    bce_criterion = T.nn.BCEWithLogitsLoss()
    adam_optimizer = T.optim.Adam(model.parameters(), lr=0.01, betas=(0.9, 0.98))
    losses = []
    model.train()
    for u, seq, pos, neg in batches:
        pos_logits, neg_logits = model(u, seq, pos, neg)
        pos_labels = T.ones(pos_logits.shape, device=device)
        neg_labels = T.zeros(neg_logits.shape, device=device)
        adam_optimizer.zero_grad()
        indices = np.where(pos != 0)
        loss = bce_criterion(pos_logits[indices], pos_labels[indices])
        loss += bce_criterion(neg_logits[indices], neg_labels[indices])
        for param in model.item_emb.parameters():
            loss += l2_emb * T.norm(param)
        loss.backward()
        adam_optimizer.step()
        losses.append(loss.item())
    model.eval()
    NDCG, HT = 0.0, 0.0
    with T.no_grad():
        for seq, item_idx in test:
            predictions = -model.predict(*[np.array(a) for a in [[0], [seq], item_idx]])
            predictions = predictions[0]
            rank = predictions.argsort().argsort()[0].item()
            if rank < 3:
                NDCG += 1 / np.log2(rank + 2)
                HT += 1
    return losses + [NDCG, HT], numpy_state(model)


def test_sasrec(device):
    rng = np.random.default_rng(19)
    batches = []
    for _ in range(3):
        seq = rng.integers(1, 11, (3, 5)) * (rng.random((3, 5)) > 0.3)
        pos = np.roll(seq, -1, 1) * (seq != 0)
        batches.append((np.arange(3), seq, pos, rng.integers(1, 11, (3, 5)) * (pos != 0)))
    test = [(rng.integers(0, 11, 5), rng.permutation(np.arange(1, 11))[:6]) for _ in range(3)]
    torch.manual_seed(0)
    run_both(train_sasrec, device, numpy_state(sasrec(torch)), batches, test)

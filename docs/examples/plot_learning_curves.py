"""
Learning curves of minibatch training
=====================================

:class:`~fastsoftmax.SoftmaxRegression` records the training loss and, with
``validation_data``, the validation loss and error of every epoch in
``history_``. :func:`~fastsoftmax.plotting.plot_learning_curves` draws them;
here for plain SGD and for Adam on the digits.
"""

import fastsoftmax as fs
from fastsoftmax.plotting import plot_learning_curves

X_train, y_train, X_test, y_test = fs.datasets.load_digits(return_X_y=True)

figures = []  # plot_learning_curves returns a matplotlib Figure; fig.savefig writes it
for optimizer in ("sgd", "adam"):
    model = fs.SoftmaxRegression(optimizer=optimizer, max_epochs=30, random_state=0)
    model.fit(X_train, y_train, validation_data=(X_test, y_test))
    print(f"{optimizer}: test accuracy {model.score(X_test, y_test):.3f}")
    fig = plot_learning_curves(model.history_)
    fig.suptitle(f"SoftmaxRegression(optimizer={optimizer!r})")
    figures.append(fig)
